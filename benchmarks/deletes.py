#!/usr/bin/env python3
"""How long `DELETE /v2/<name>/manifests/<digest>` takes in a repository of many tags.

    python benchmarks/deletes.py [--repositories 10000,100000] [--tags 10000] [--deletes 200]
    python benchmarks/deletes.py --quick          # 2,000 repositories, 1,000 tags, 50 deletes
    python benchmarks/deletes.py --out /tmp/deletes.md

For each store size it writes, once, a store in distribution's layout: one repository
`tags/many` of `--tags` tags, each its own image, and one-image repositories up to
`--repositories` in all. Then distribution 2.8.2 and dockyard (in that order, both with
`storage.delete.enabled: true`), each on its own `cp -a` copy of the store, delete the same
`--deletes` manifests of `tags/many`, picked at random with a fixed seed, by digest, one
after another over one keep-alive connection. dockyard is measured once its background
index build is done. Each DELETE is timed from sending the request until its response is
read, and must answer 202. Afterwards (untimed) the tags list must hold every other tag and
none of the deleted ones, and a GET of each deleted digest must answer 404.

The report gives median, p90 and mean milliseconds per DELETE for each registry and the
ratio dockyard / distribution (time: lower is better), and how long writing each store took.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dockbench.clients import Client, expect
from dockbench.common import DISTRIBUTION, DOCKYARD, MANIFEST_ACCEPT, NA, BenchError, X, log
from dockbench.machine import wait_for_quiet
from dockbench.servers import Server
from dockbench.storegen import MetadataStore, copy_store, make_metadata_store

SEED = 20240601
SCRATCH = Path("/tmp/deletes-bench")
# Other work may share the machine: wait this long at most for it to calm down before timing.
QUIET_WAIT_S = 30.0


@dataclass(frozen=True)
class Options:
    sizes: list[int]
    tags: int
    deletes: int
    out: Path | None
    scratch: Path
    keep_tmp: bool
    dockyard_cmd: list[str]
    distribution_cmd: list[str]
    command_line: str


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", default="10000,100000",
                        help="comma-separated store sizes (default 10000,100000)")
    parser.add_argument("--tags", type=int, default=10_000,
                        help="tags of the repository deleted from (default 10000)")
    parser.add_argument("--deletes", type=int, default=200,
                        help="manifests deleted per registry and size (default 200)")
    parser.add_argument("--quick", action="store_true",
                        help="2,000 repositories, 1,000 tags, 50 deletes")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    parser.add_argument("--scratch", type=Path, default=SCRATCH,
                        help=f"parent of the run's stores and logs (default {SCRATCH})")
    parser.add_argument("--keep-tmp", action="store_true", help="keep stores and logs")
    parser.add_argument("--dockyard-cmd", default=f"{sys.executable} -m dockyard serve {{config}}",
                        help="command that serves a config file ({config} is replaced)")
    parser.add_argument("--distribution-cmd", default="docker-registry serve {config}")
    args = parser.parse_args(argv)
    if args.quick:
        sizes, tags, deletes = [2000], 1000, 50
    else:
        sizes = [int(part) for part in args.repositories.split(",") if part.strip()]
        tags, deletes = int(args.tags), int(args.deletes)
    if not sizes or min(sizes) < 2 or not 1 <= deletes <= tags <= 100_000:
        parser.error("--repositories at least 2 each; 1 <= --deletes <= --tags <= 100000")
    return Options(
        sizes=sizes, tags=tags, deletes=deletes, out=args.out, scratch=args.scratch,
        keep_tmp=bool(args.keep_tmp), dockyard_cmd=shlex.split(args.dockyard_cmd),
        distribution_cmd=shlex.split(args.distribution_cmd),
        command_line=shlex.join(["python", "benchmarks/deletes.py", *argv]))


# --- what is deleted ----------------------------------------------------------------------

def manifest_digest(store: MetadataStore, tag: str) -> str:
    """The digest a tag of the store points at, from its `current` link."""
    link = (store.root / "docker/registry/v2/repositories" / store.tags_repo / "_manifests"
            / "tags" / tag / "current" / "link")
    return link.read_text().strip()


def pick_victims(store: MetadataStore, count: int) -> dict[str, str]:
    """`count` tags of the store (the same for both registries), with their digests."""
    tags = random.Random(SEED).sample(store.tags, count)
    return {tag: manifest_digest(store, tag) for tag in tags}


# --- one registry -------------------------------------------------------------------------

@dataclass
class Outcome:
    registry: str
    millis: list[float]  # one per DELETE, in the order sent
    start_s: float  # until `/v2/` answered
    index_s: float | None  # dockyard's background index build, as it logged it
    background_cores: float  # what other processes used just before the deletes


def time_deletes(server: Server, repo: str, digests: list[str]) -> list[float]:
    """Milliseconds of each DELETE, sequentially over one keep-alive connection."""
    client = Client(server.port, timeout=600)
    millis: list[float] = []
    try:
        for digest in digests:
            started = time.perf_counter()
            response = client.request("DELETE", f"/v2/{repo}/manifests/{digest}")
            millis.append((time.perf_counter() - started) * 1000)
            expect(response, (202,), f"{server.name} DELETE {digest}")
    finally:
        client.close()
    return millis


def check_after(server: Server, store: MetadataStore, victims: dict[str, str]) -> None:
    """The tags list holds every other tag and no deleted one; deleted digests are gone."""
    client = Client(server.port, timeout=600)
    try:
        listed = expect(client.request("GET", f"/v2/{store.tags_repo}/tags/list"), (200,),
                        f"{server.name} tags list")
        tags = set(json.loads(listed.body).get("tags") or [])
        expected = set(store.tags) - set(victims)
        if tags != expected:
            raise BenchError(f"{server.name} tags list: {len(tags)} tags, expected "
                             f"{len(expected)}; {len(tags & set(victims))} deleted ones left")
        for digest in victims.values():
            got = client.request("GET", f"/v2/{store.tags_repo}/manifests/{digest}",
                                 headers={"Accept": MANIFEST_ACCEPT})
            expect(got, (404,), f"{server.name} GET deleted {digest}")
    finally:
        client.close()
    log(f"  {server.name:12} check: {len(tags):,} tags left, deleted digests answer 404")


def remove(path: Path) -> None:
    """rm -rf a store copy or the run's directory (hundreds of thousands of small files at
    100,000 repositories: this takes minutes)."""
    subprocess.run(["rm", "-rf", str(path)], check=True, timeout=7200)


def log_line_count(server: Server) -> int:
    try:
        return len(server.log_path.read_text(errors="replace").splitlines())
    except OSError:
        return 0


def measure_registry(name: str, command: list[str], store: MetadataStore,
                     victims: dict[str, str], workdir: Path, keep_tmp: bool) -> Outcome:
    # log_index: dockyard logs at info level, so that its "index: built" can be waited for.
    server = Server(name, command, workdir, log_index=name == DOCKYARD)
    copy_store(store.root, server.root)
    try:
        server.start()
        log(f"  {name:12} answered after {server.start_seconds:.2f}s")
        # Until its index is complete, dockyard finds a digest's tags by reading them all.
        index_s = server.wait_index_built()
        if index_s is not None:
            log(f"  {name:12} built its index in {index_s:.1f}s")
        load = wait_for_quiet(QUIET_WAIT_S)
        lines_before = log_line_count(server)
        millis = time_deletes(server, store.tags_repo, list(victims.values()))
        # Logged to tell whether the server's own logging weighs on its deletes.
        log_lines = log_line_count(server) - lines_before
        log(f"  {name:12} {len(millis)} deletes, median {statistics.median(millis):.2f} ms "
            f"(other load {load:.2f} cores, {log_lines} log lines)")
        check_after(server, store, victims)
        return Outcome(name, millis, server.start_seconds, index_s, load)
    finally:
        server.stop()
        if not keep_tmp:
            remove(workdir)


@dataclass
class SizeResult:
    repositories: int
    write_s: float
    outcomes: dict[str, Outcome]


def run_size(repositories: int, options: Options, scratch: Path) -> SizeResult:
    log(f"writing a store of {repositories:,} repositories, one of {options.tags:,} tags")
    started = time.perf_counter()
    store = make_metadata_store(scratch / f"store-{repositories}", repositories, options.tags)
    write_s = time.perf_counter() - started
    log(f"  {store.blobs:,} blobs written in {write_s:.1f}s")
    victims = pick_victims(store, options.deletes)
    commands = {DISTRIBUTION: options.distribution_cmd, DOCKYARD: options.dockyard_cmd}
    outcomes = {
        name: measure_registry(name, command, store, victims,
                               scratch / f"{name}-{repositories}", options.keep_tmp)
        for name, command in commands.items()
    }
    if not options.keep_tmp:
        remove(store.root)
    return SizeResult(repositories, write_s, outcomes)


# --- the report ---------------------------------------------------------------------------

def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def summary(values: list[float]) -> tuple[float, float, float]:
    """Median, p90 and mean."""
    return statistics.median(values), p90(values), statistics.fmean(values)


def results_table(results: list[SizeResult]) -> str:
    lines = ["| repositories | registry | median ms | p90 ms | mean ms | start s | index s "
             "| other load |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for result in results:
        stats = {name: summary(outcome.millis) for name, outcome in result.outcomes.items()}
        for name, outcome in result.outcomes.items():
            median, tail, mean = stats[name]
            index = f"{outcome.index_s:.1f}" if outcome.index_s is not None else NA
            lines.append(f"| {result.repositories:,} | {name} | {median:.2f} | {tail:.2f} | "
                         f"{mean:.2f} | {outcome.start_s:.2f} | {index} | "
                         f"{outcome.background_cores:.2f} cores |")
        ratios = [stats[DOCKYARD][part] / stats[DISTRIBUTION][part] for part in range(3)]
        lines.append(f"| {result.repositories:,} | **dockyard / distribution** | "
                     + " | ".join(f"**{ratio:.3f}{X}**" for ratio in ratios)
                     + f" | {NA} | {NA} | {NA} |")
    return "\n".join(lines)


def machine_line() -> str:
    cores = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout
    kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True, check=True).stdout
    return f"Machine: {cores.strip()} cores (`nproc`), Linux {kernel.strip()} (`uname -r`)."


def report(results: list[SizeResult], options: Options, total_s: float) -> str:
    writes = ", ".join(f"{result.repositories:,} repositories in {result.write_s:.1f} s"
                       for result in results)
    return "\n".join([
        f"`{options.command_line}`", "",
        machine_line(), "",
        f"`DELETE /v2/tags/many/manifests/<digest>` in a repository of {options.tags:,} tags, "
        f"{options.deletes} deletes per registry and size, one after another over one "
        "keep-alive connection; each answered 202. dockyard with its index complete. "
        "Ratios are dockyard / distribution of time (lower is better). Other load: cores "
        "other processes used just before the deletes.", "",
        results_table(results), "",
        f"Stores written: {writes}. Whole run: {total_s:.0f} s.",
    ])


def publish(text: str, out: Path | None) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    options.scratch.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=options.scratch))
    started = time.perf_counter()
    results: list[SizeResult] = []
    try:
        for repositories in options.sizes:
            results.append(run_size(repositories, options, scratch))
            # Written after every size: a long run stopped early keeps what it measured.
            publish(report(results, options, time.perf_counter() - started), options.out)
    finally:
        if not options.keep_tmp:
            remove(scratch)
    print(report(results, options, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
