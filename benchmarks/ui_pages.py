#!/usr/bin/env python3
"""How fast dockyard's web UI renders its pages on the benchmark stores.

    python benchmarks/ui_pages.py [--repositories 10000] [--tags 5000] [--rounds 3]
    python benchmarks/ui_pages.py --quick          # 2,000 repositories, 1,000 tags
    python benchmarks/ui_pages.py --out /tmp/ui_pages.md

It writes, once, a store in distribution's layout: one repository `tags/many` of `--tags`
tags, each its own image, and one-image repositories (catalog/rNNNNN) up to `--repositories`
in all. dockyard serves a `cp -a` copy of it with `ui: {enabled: true}` and no auth (its
default workers, one per core), and is measured once its background index build is done.

First, untimed, every page must answer 200 and show what it should (a repository's name, a
tag, the total of a search, the image's digest). Then each page is timed with
`wrk --latency -t1 -c4 -d10s` (after an untimed 2 s wrk warm-up of every page, so each worker
has read what it keeps in memory): the repositories page (first page; a search matching
about a tenth of the names; page 100; sorted by size and by last push, newest and largest
first), the repository page of `tags/many` (first page and page 25), the image page of
`tags/many:t00042`, and, as reference points for the same server, `GET /v2/_catalog?n=50` and
`GET /v2/tags/many/tags/list?n=100`. Pages run in turn, `--rounds` times; before each wrk run
the script waits (at most 30 s) for other processes to quiet down and notes what they used.
The report gives, per page, the medians over the rounds of wrk's p50, p99 and requests/s.

Last, the worst case a person sees: the repositories page sorted by size right after a write
(its summaries of every repository are recomputed when the index changes). A tag is PUT to
`tags/many`, then one GET of the page is timed with httpx, and the next (warm) GET too; once
per round.
"""

from __future__ import annotations

import argparse
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dockbench.clients import parse_wrk
from dockbench.common import DOCKYARD, MANIFEST_ACCEPT, NA, BenchError, log
from dockbench.machine import wait_for_quiet
from dockbench.servers import Server
from dockbench.storegen import MetadataStore, copy_store, make_metadata_store

SCRATCH = Path("/tmp/ui-pages-bench")
UI_CONFIG = "ui:\n  enabled: true\n"
REPOSITORIES_PER_PAGE = 50  # dockyard.ui.pages
TAGS_PER_PAGE = 50  # dockyard.ui.pages
DEEP_PAGE = 100  # of the repositories
TAG_PAGE = 25  # of tags/many
IMAGE_TAG = "t00042"
# Other work may share the machine: wait this long at most for it to calm down before timing.
QUIET_WAIT_S = 30.0
WARMUP_S = 2


@dataclass(frozen=True)
class Options:
    repositories: int
    tags: int
    rounds: int
    duration: int
    connections: int
    threads: int
    out: Path | None
    scratch: Path
    keep_tmp: bool
    dockyard_cmd: list[str]
    command_line: str


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=10_000,
                        help="repositories of the store (default 10000)")
    parser.add_argument("--tags", type=int, default=5_000,
                        help="tags of tags/many (default 5000)")
    parser.add_argument("--quick", action="store_true", help="2,000 repositories, 1,000 tags")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each page (default 3)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=4, help="wrk -c (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    parser.add_argument("--scratch", type=Path, default=SCRATCH,
                        help=f"parent of the run's store and logs (default {SCRATCH})")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the store and logs")
    parser.add_argument("--dockyard-cmd", default=f"{sys.executable} -m dockyard serve {{config}}",
                        help="command that serves a config file ({config} is replaced)")
    args = parser.parse_args(argv)
    repositories, tags = (2000, 1000) if args.quick else (args.repositories, args.tags)
    if repositories < 2 or not 100 <= tags <= 100_000:  # the image page shows t00042
        parser.error("--repositories at least 2; --tags from 100 to 100000")
    if args.rounds < 1 or args.duration < 1 or args.connections < 1 or args.threads < 1:
        parser.error("--rounds, --duration, --connections and --threads at least 1")
    return Options(
        repositories=repositories, tags=tags, rounds=args.rounds, duration=args.duration,
        connections=args.connections, threads=args.threads, out=args.out,
        scratch=args.scratch, keep_tmp=bool(args.keep_tmp),
        dockyard_cmd=shlex.split(args.dockyard_cmd),
        command_line=shlex.join(["python", "benchmarks/ui_pages.py", *argv]))


# --- the pages ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    label: str
    path: str  # below the server's base URL
    expect: list[str]  # text the response must contain


def search_term(names: list[str]) -> tuple[str, int]:
    """A part of a name matching the closest to a tenth of the repositories, and how many."""
    candidates = [f"r{digits}" for width in range(1, 4) for digits in
                  (f"{n:0{width}d}" for n in range(10 ** width))]
    best, best_count = "", -1
    for term in candidates:
        count = sum(term in name for name in names)
        if best_count < 0 or abs(count * 10 - len(names)) < abs(best_count * 10 - len(names)):
            best, best_count = term, count
    return best, best_count


def page_count(total: int, per_page: int) -> int:
    return max(1, (total + per_page - 1) // per_page)


def targets(store: MetadataStore) -> list[Target]:
    names, tags, repo = store.repositories, store.tags, store.tags_repo
    term, matches = search_term(names)
    deep = min(DEEP_PAGE, page_count(len(names), REPOSITORIES_PER_PAGE))
    tag_page = min(TAG_PAGE, page_count(len(tags), TAGS_PER_PAGE))
    first_match = next(name for name in names if term in name)
    total = f"{len(names):,} in all"
    return [
        Target("repositories, first page", "/ui/", [names[0], total]),
        Target(f"repositories, search `?q={term}` ({matches:,} of {len(names):,})",
               f"/ui/?q={term}", [first_match, f"{matches:,} in all"]),
        Target(f"repositories, page {deep}", f"/ui/?page={deep}",
               [names[(deep - 1) * REPOSITORIES_PER_PAGE], total]),
        Target("repositories, sorted by size (largest first)", "/ui/?sort=size&order=desc",
               [repo, total]),
        Target("repositories, sorted by last push (newest first)",
               "/ui/?sort=pushed&order=desc", ["catalog/r", total]),
        Target(f"repository `{repo}` ({len(tags):,} tags), first page", f"/ui/r/{repo}",
               [tags[0], f"{len(tags):,} in all"]),
        Target(f"repository `{repo}`, page {tag_page}", f"/ui/r/{repo}?page={tag_page}",
               [tags[(tag_page - 1) * TAGS_PER_PAGE], f"{len(tags):,} in all"]),
        Target(f"image `{repo}:{IMAGE_TAG}`", f"/ui/r/{repo}/-/image/{IMAGE_TAG}",
               [IMAGE_TAG, image_digest(store, IMAGE_TAG)]),
        Target("`GET /v2/_catalog?n=50` (reference)", "/v2/_catalog?n=50", [names[0]]),
        Target(f"`GET /v2/{repo}/tags/list?n=100` (reference)",
               f"/v2/{repo}/tags/list?n=100", [tags[0], tags[99]]),
    ]


def image_digest(store: MetadataStore, tag: str) -> str:
    link = (store.root / "docker/registry/v2/repositories" / store.tags_repo / "_manifests"
            / "tags" / tag / "current" / "link")
    return link.read_text().strip()


def check_pages(base: str, pages: list[Target]) -> None:
    """Every page answers 200 and shows what it should; nothing says the index is still
    being built."""
    with httpx.Client(base_url=base, timeout=120) as client:
        for target in pages:
            response = client.get(target.path)
            if response.status_code != 200:
                raise BenchError(f"{target.path}: {response.status_code} "
                                 f"{response.text[:300]}")
            missing = [text for text in target.expect if text not in response.text]
            if missing:
                raise BenchError(f"{target.path}: {missing} not in the response")
            if "still reading its store" in response.text:
                raise BenchError(f"{target.path}: the index is still being built")
            log(f"  ok  {target.path} ({len(response.content):,} bytes)")


# --- wrk ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class WrkRun:
    p50_ms: float
    p99_ms: float
    rps: float
    load: float  # cores other processes used just before


P50 = re.compile(r"^\s*50%\s+([\d.]+)(us|ms|s|m)\b", re.MULTILINE)
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk(url: str, duration: int, threads: int, connections: int) -> dict[str, float]:
    argv = ["wrk", "--latency", "-t", str(min(threads, connections)), "-c", str(connections),
            "-d", f"{duration}s", "--timeout", "10s", url]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk {url} did not finish in time") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk exit {done.returncode}: {done.stderr.strip()[:300]}")
    parsed = parse_wrk(done.stdout)  # fails on any non-2xx answer or socket error
    p50 = P50.search(done.stdout)
    if p50 is None:
        raise BenchError(f"no p50 in wrk's output:\n{done.stdout}")
    parsed["p50_ms"] = float(p50.group(1)) * UNITS_MS[p50.group(2)]
    return parsed


def measure(base: str, target: Target, options: Options) -> WrkRun:
    load = wait_for_quiet(QUIET_WAIT_S)
    got = wrk(base + target.path, options.duration, options.threads, options.connections)
    return WrkRun(got["p50_ms"], got["p99_ms"], got["rps"], load)


# --- the cold page after a write ------------------------------------------------------------

@dataclass(frozen=True)
class ColdRun:
    cold_ms: float
    warm_ms: float
    load: float


def cold_sorted_page(base: str, store: MetadataStore, round_no: int) -> ColdRun:
    """PUT a new tag (the index changes, so the summaries must be recomputed), then time one
    GET of the page sorted by size, and the next."""
    repo = store.tags_repo
    path = "/ui/?sort=size&order=desc"
    with httpx.Client(base_url=base, timeout=600) as client:
        manifest = client.get(f"/v2/{repo}/manifests/{IMAGE_TAG}",
                              headers={"Accept": MANIFEST_ACCEPT})
        if manifest.status_code != 200:
            raise BenchError(f"GET manifest {IMAGE_TAG}: {manifest.status_code}")
        client.get(path)  # this connection's worker is warm before the write
        load = wait_for_quiet(QUIET_WAIT_S)
        put = client.put(f"/v2/{repo}/manifests/cold-{round_no}", content=manifest.content,
                         headers={"Content-Type": manifest.headers["content-type"]})
        if put.status_code != 201:
            raise BenchError(f"PUT tag cold-{round_no}: {put.status_code} {put.text[:300]}")
        millis = []
        for _ in range(2):
            started = time.perf_counter()
            response = client.get(path)
            millis.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or repo not in response.text:
                raise BenchError(f"{path} after a write: {response.status_code}")
    return ColdRun(millis[0], millis[1], load)


# --- the run ------------------------------------------------------------------------------

@dataclass
class Results:
    pages: list[Target]
    runs: dict[str, list[WrkRun]] = field(default_factory=dict)
    cold: list[ColdRun] = field(default_factory=list)
    write_s: float = 0.0
    start_s: float = 0.0
    index_s: float | None = None
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


def remove(path: Path) -> None:
    subprocess.run(["rm", "-rf", str(path)], check=True, timeout=7200)


def loadavg() -> tuple[float, float, float]:
    with open("/proc/loadavg") as handle:
        one, five, fifteen = (float(part) for part in handle.read().split()[:3])
    return one, five, fifteen


def run(options: Options, scratch: Path) -> Results:
    log(f"writing a store of {options.repositories:,} repositories, one of "
        f"{options.tags:,} tags")
    started = time.perf_counter()
    store = make_metadata_store(scratch / "store", options.repositories, options.tags)
    write_s = time.perf_counter() - started
    log(f"  {store.blobs:,} blobs written in {write_s:.1f}s")
    pages = targets(store)
    results = Results(pages, write_s=write_s, load_before=loadavg())
    server = Server(DOCKYARD, options.dockyard_cmd, scratch / DOCKYARD, log_index=True,
                    extra_config=UI_CONFIG)
    copy_store(store.root, server.root)
    try:
        server.start()
        results.start_s = server.start_seconds
        log(f"  dockyard answered after {server.start_seconds:.2f}s")
        results.index_s = server.wait_index_built()
        log(f"  dockyard built its index in {results.index_s}s")
        check_pages(server.base, pages)
        for target in pages:  # untimed: every worker reads what it keeps in memory
            wrk(server.base + target.path, WARMUP_S, options.threads, options.connections)
        for round_no in range(1, options.rounds + 1):
            for target in pages:
                got = measure(server.base, target, options)
                results.runs.setdefault(target.label, []).append(got)
                log(f"  round {round_no} {target.path}: p50 {got.p50_ms:.2f} ms, "
                    f"p99 {got.p99_ms:.2f} ms, {got.rps:,.0f} req/s "
                    f"(other load {got.load:.2f} cores)")
        for round_no in range(1, options.rounds + 1):
            cold = cold_sorted_page(server.base, store, round_no)
            results.cold.append(cold)
            log(f"  cold sorted-by-size page after a write: {cold.cold_ms:.1f} ms "
                f"(then {cold.warm_ms:.1f} ms; other load {cold.load:.2f} cores)")
        results.load_after = loadavg()
    finally:
        server.stop()
    return results


# --- the report ---------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return statistics.median(values)


def table(results: Results) -> str:
    lines = ["| page | p50 ms | p99 ms | requests/s | other load, cores |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for target in results.pages:
        runs = results.runs.get(target.label, [])
        if not runs:
            lines.append(f"| {target.label} | {NA} | {NA} | {NA} | {NA} |")
            continue
        lines.append(
            f"| {target.label} | {median([run.p50_ms for run in runs]):.2f} | "
            f"{median([run.p99_ms for run in runs]):.2f} | "
            f"{median([run.rps for run in runs]):,.0f} | "
            f"{max(run.load for run in runs):.2f} |")
    return "\n".join(lines)


def cold_line(results: Results) -> str:
    if not results.cold:
        return ""
    colds = ", ".join(f"{run.cold_ms:.0f}" for run in results.cold)
    warms = ", ".join(f"{run.warm_ms:.1f}" for run in results.cold)
    return (f"Sorted by size right after a write (a tag PUT, then one GET with httpx): "
            f"{median([run.cold_ms for run in results.cold]):.0f} ms (median; per round "
            f"{colds}), the next GET {median([run.warm_ms for run in results.cold]):.1f} ms "
            f"(per round {warms}).")


def machine_line() -> str:
    cores = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout
    kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True, check=True).stdout
    return f"Machine: {cores.strip()} cores (`nproc`), Linux {kernel.strip()} (`uname -r`)."


def report(results: Results, options: Options, total_s: float) -> str:
    before = ", ".join(f"{value:.2f}" for value in results.load_before)
    after = ", ".join(f"{value:.2f}" for value in results.load_after)
    index = f"{results.index_s:.1f} s" if results.index_s is not None else NA
    return "\n".join([
        f"`{options.command_line}`", "",
        f"{results.started:%Y-%m-%d %H:%M} UTC. {machine_line()} Load average (1, 5, 15 min) "
        f"before: {before}; after: {after}.", "",
        f"dockyard with `ui: {{enabled: true}}`, no auth, on a store of "
        f"{options.repositories:,} repositories, one of them (`tags/many`) with "
        f"{options.tags:,} tags; index built. `wrk --latency -t{options.threads} "
        f"-c{options.connections} -d{options.duration}s`, {options.rounds} rounds, medians "
        "of the rounds; every page answered 200 with the expected content first. Other load: "
        "the most cores other processes used just before a round of the page.", "",
        table(results), "",
        cold_line(results), "",
        f"Store written in {results.write_s:.1f} s; dockyard answered `/v2/` after "
        f"{results.start_s:.2f} s and built its index in {index}. Whole run: "
        f"{total_s:.0f} s.",
    ])


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    options.scratch.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=options.scratch))
    started = time.perf_counter()
    try:
        results = run(options, scratch)
    finally:
        if not options.keep_tmp:
            remove(scratch)
    text = report(results, options, time.perf_counter() - started)
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
