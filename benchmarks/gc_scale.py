#!/usr/bin/env python3
"""What a garbage collection costs on a large store when little of it changed.

    python benchmarks/gc_scale.py [--images 100000] [--delete 1000] [--store DIR] [--out FILE]
    python benchmarks/gc_scale.py --quick          # 2,000 images, 100 deleted, to try it

Writes one store of `--images` repositories in distribution's layout (each one image: config
+ 4 layers of 1-4 KiB, one base layer shared from a pool of 20, three of its own), or reuses
the one in `--store`. dockyard serves it and builds its index. Then, in turn on the same
store (no copies: at 100,000 repositories a copy takes longer than everything else), each
round deletes `--delete` other images through dockyard's API (untimed; dockyard stopped
after) and times one collector command, process start included:

1. dockyard, full pass: `dockyard garbage-collect --grace-period 0 --json CONFIG` with
   `storage.index.solewriter` on; the first collection after the index was built from a
   store it never recorded lists the whole store whatever that setting says;
2. dockyard, what changed: the same command again (it sweeps the index's candidates);
3. distribution 2.8.2: `docker-registry garbage-collect CONFIG`;
4. dockyard, full pass asked for: the command of round 2 with `--full`.

Every round must remove exactly the blob files only its deleted images used (counted on disk
before and after), and a few kept images are pulled whole afterwards. Each round's store is
1% smaller than the last one's (at the defaults); the order favours no collector's cache,
since every round reads what the deletes just touched.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dockbench.aclient import AsyncConnection, run_pool
from dockbench.common import DISTRIBUTION, DOCKYARD, MANIFEST_ACCEPT, BenchError, count_blobs, log
from dockbench.scenarios_gc import SOLE_WRITER
from dockbench.servers import Server
from dockbench.storegen import make_gc_store

V2 = ("docker", "registry", "v2")


@dataclass(frozen=True)
class StoredImage:
    repo: str
    manifest: str  # digest
    own_blobs: frozenset[str]  # what no other image uses: config, own layers, manifest


@dataclass
class Round:
    label: str
    seconds: float
    deleted_files: int
    expected: int
    note: str


def read_images(root: Path) -> list[StoredImage]:
    """Every image of the store, from its files: repositories/gc/<name>, tag v1."""
    v2 = root.joinpath(*V2)
    repositories = v2 / "repositories" / "gc"
    images: list[tuple[str, str, list[str]]] = []
    uses: dict[str, int] = {}
    for entry in sorted(os.scandir(repositories), key=lambda item: item.name):
        link = Path(entry.path) / "_manifests/tags/v1/current/link"
        if not link.exists():
            continue
        manifest = link.read_text().strip()
        blobs = [f"sha256:{name}" for name in os.listdir(Path(entry.path) / "_layers/sha256")]
        images.append((f"gc/{entry.name}", manifest, blobs))
        for digest in blobs:
            uses[digest] = uses.get(digest, 0) + 1
    return [StoredImage(repo, manifest, frozenset(
        [manifest, *(digest for digest in blobs if uses[digest] == 1)]))
        for repo, manifest, blobs in images]


def delete_images(server: Server, images: list[StoredImage]) -> None:
    async def work(conn: AsyncConnection, image: StoredImage) -> None:
        status, _, _ = await conn.request("DELETE",
                                          f"/v2/{image.repo}/manifests/{image.manifest}")
        if status != 202:
            raise BenchError(f"DELETE {image.repo}@{image.manifest}: {status}")

    asyncio.run(run_pool(server.port, 8, images, work))


def blob_file(root: Path, digest: str) -> Path:
    hex_digest = digest.split(":", 1)[1]
    return root.joinpath(*V2, "blobs", "sha256", hex_digest[:2], hex_digest, "data")


def pull_whole(server: Server, images: list[StoredImage]) -> None:
    """The manifest and every blob of each image, hashed."""
    async def work(conn: AsyncConnection, image: StoredImage) -> None:
        status, _, body = await conn.request("GET", f"/v2/{image.repo}/manifests/v1",
                                             headers={"Accept": MANIFEST_ACCEPT})
        if status != 200 or "sha256:" + hashlib.sha256(body).hexdigest() != image.manifest:
            raise BenchError(f"{image.repo}: manifest GET {status}")
        for digest in image.own_blobs - {image.manifest}:
            status, _, body = await conn.request("GET", f"/v2/{image.repo}/blobs/{digest}")
            if status != 200 or "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                raise BenchError(f"{image.repo}: blob {digest} GET {status}")

    asyncio.run(run_pool(server.port, 4, images, work))


def collect(label: str, argv: list[str], env: dict[str, str] | None, root: Path,
            doomed: list[StoredImage]) -> Round:
    expected = sum(len(image.own_blobs) for image in doomed)
    before = count_blobs(root)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3 * 3600,
                          check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"{label}: exit {done.returncode}: {done.stderr.strip()[-400:]}")
    deleted = before - count_blobs(root)
    left = [digest for image in doomed for digest in image.own_blobs
            if blob_file(root, digest).exists()]
    if deleted != expected or left:
        raise BenchError(f"{label}: deleted {deleted} blob files, expected {expected} "
                         f"({len(left)} of the deleted images' blobs left)")
    note = ""
    if '"full_pass"' in done.stdout:
        full = '"full_pass": true' in done.stdout
        note = "full pass" if full else "candidates only"
    log(f"  {label}: {seconds:.2f}s, {deleted:,} blob files deleted ({note or 'distribution'})")
    return Round(label, seconds, deleted, expected, note)


def run(images: int, delete: int, store_dir: Path | None, keep: bool) -> tuple[
        list[Round], dict[str, float]]:
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-gc-scale-"))
    facts: dict[str, float] = {}
    try:
        root = workdir / "store"
        if store_dir is not None and store_dir.joinpath(*V2).exists():
            root.symlink_to(store_dir.resolve(), target_is_directory=True)
            log(f"reusing the store in {store_dir}")
        else:
            target = store_dir if store_dir is not None else root
            started = time.perf_counter()
            make_gc_store(target, images)
            facts["write_s"] = time.perf_counter() - started
            if store_dir is not None:
                root.symlink_to(store_dir.resolve(), target_is_directory=True)
            log(f"wrote {images:,} images in {facts['write_s']:.0f}s")
        stored = read_images(root)
        facts["images"] = float(len(stored))
        log(f"{len(stored):,} images, {count_blobs(root):,} blob files")
        rng = random.Random(7)
        order = rng.sample(stored, k=min(len(stored), 4 * delete + 5))
        batches = [order[index * delete:(index + 1) * delete] for index in range(4)]
        kept = order[4 * delete:]
        dockyard = Server(DOCKYARD, [sys.executable, "-m", "dockyard", "serve", "{config}"],
                          workdir, log_index=True)
        dockyard.write_config()
        config = str(dockyard.config_path)
        dockyard_gc = [sys.executable, "-m", "dockyard", "garbage-collect", "--grace-period",
                       "0", "--json", config]
        sole_writer = {**os.environ, **SOLE_WRITER}
        collectors = [
            ("dockyard, full pass (first after the index was built)", dockyard_gc, sole_writer),
            ("dockyard, what changed (storage.index.solewriter)", dockyard_gc, sole_writer),
            (f"{DISTRIBUTION} 2.8.2 (registry stopped)",
             ["docker-registry", "garbage-collect", config], None),
            ("dockyard, full pass asked for (--full)", [*dockyard_gc, "--full"], sole_writer),
        ]
        rounds: list[Round] = []
        for number, ((label, argv, env), doomed) in enumerate(
                zip(collectors, batches, strict=True)):
            dockyard.start()
            if number == 0:
                built = dockyard.wait_index_built()
                if built is not None:
                    facts["index_build_s"] = built
                    log(f"dockyard built its index in {built:.0f}s")
            delete_images(dockyard, doomed)
            dockyard.stop()
            rounds.append(collect(label, argv, env, root, doomed))
        dockyard.start()
        pull_whole(dockyard, kept)
        dockyard.stop()
        log(f"kept images pulled whole: {len(kept)}")
        return rounds, facts
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def report(rounds: list[Round], facts: dict[str, float], command: str, delete: int) -> str:
    distribution = next(item.seconds for item in rounds if item.label.startswith(DISTRIBUTION))
    lines = [
        f"`{command}`",
        "",
        f"{int(facts['images']):,} repositories, one image each; every round deleted "
        f"{delete:,} images through dockyard's API, then one collector ran (wall time, "
        "process start included). Machine: "
        f"{os.cpu_count()} cores, `{os.uname().release}`.",
        "",
        "| Collector | s | vs distribution (time) | blob files deleted | how |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for item in rounds:
        lines.append(f"| {item.label} | {item.seconds:.2f} | {item.seconds / distribution:.3f} "
                     f"| {item.deleted_files:,} | {item.note or 'marks from every manifest'} |")
    if "index_build_s" in facts:
        lines += ["", f"dockyard's background index build at start: "
                      f"{facts['index_build_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--delete", type=int, default=1000, help="images deleted per round")
    parser.add_argument("--store", type=Path, help="write the store here, or reuse it")
    parser.add_argument("--keep-tmp", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.images, args.delete = 2000, 100
    command = "python benchmarks/gc_scale.py " + " ".join(sys.argv[1:])
    rounds, facts = run(args.images, args.delete, args.store, args.keep_tmp)
    text = report(rounds, facts, command, args.delete)
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
