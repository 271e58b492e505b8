"""Command-line options and the sizes of a full or a --quick run."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from .common import REPO_ROOT, MiB

# In the order they run. The first group uses one long-lived server per side.
SCENARIOS = (
    "limits",
    "monolithic",
    "chunked",
    "pull",
    "manifest",
    "auth",
    "small",
    "skopeo",
    "downloads",
    "tags",
    "catalog",
    "gc",
)
BLOB_SCENARIOS = ("monolithic", "chunked", "pull")
# What `--storage s3` runs, in this order ("limits" there is what the S3 server does alone).
S3_SCENARIOS = ("limits", "monolithic", "chunked", "pull", "small", "skopeo", "gc")
STORAGES = ("filesystem", "s3")
S3_OBJECTSTORES = ("auto", "memstore", "bluestore")


@dataclass(frozen=True)
class Settings:
    quick: bool
    rounds: int
    gc_rounds: int
    blob_size: int
    chunk_size: int
    wrk_duration: int
    wrk_threads: int
    wrk_connections: int
    list_connections: int
    layer_size: int
    layer_count: int
    small_blobs: int
    small_clients: int
    tags: int
    repositories: int
    gc_repositories: int
    gc_delete_every: int
    limit_size: int
    download_clients: int
    download_size: int
    slow_seconds: int
    dockyard_cmd: list[str]
    distribution_cmd: list[str]
    dockyard_gc_cmd: list[str]
    distribution_gc_cmd: list[str]
    out: Path | None
    tmp_parent: Path | None
    keep_tmp: bool
    scenarios: tuple[str, ...]
    command_line: str
    quiet_wait: float
    storage: str = "filesystem"
    s3_objectstore: str = "auto"
    s3_concurrency: int = 32
    index: str = "sqlite"  # dockyard's index in the tags, catalog and gc scenarios

    def wants(self, *names: str) -> bool:
        return any(name in self.scenarios for name in names)


def _sized(value: int | None, full: int, quick: int, is_quick: bool) -> int:
    if value is not None:
        return int(value)
    return quick if is_quick else full


def parse_args(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(
        description="Benchmark dockyard against distribution 2.8.2 (loopback only)."
    )
    parser.add_argument(
        "--storage", choices=STORAGES, default="filesystem",
        help="where both servers keep the store: filesystem (the default), or s3 (a Ceph "
        "radosgw started here, or the S3 named by DOCKYARD_TEST_S3_*); s3 writes only the "
        "section 'On S3 (Ceph radosgw)' of the report",
    )
    parser.add_argument(
        "--s3-objectstore", choices=S3_OBJECTSTORES, default="auto",
        help="the radosgw OSD's object store: memstore (in memory), bluestore (a sparse "
        "file in the work directory), or auto: memstore when the run's objects fit in "
        "half the available memory",
    )
    parser.add_argument(
        "--s3-concurrency", type=int, default=32,
        help="concurrent PUTs writing the GC store into S3 (default 32)",
    )
    parser.add_argument(
        "--index", choices=("sqlite", "postgres"), default="sqlite",
        help="dockyard's metadata index in the tags, catalog and gc scenarios (also on "
        "S3): sqlite (a local file, the default) or postgres (a database per store on a "
        "private PostgreSQL server started here, or on the one DOCKYARD_TEST_POSTGRES_DSN "
        "names); either way dockyard is measured once its background index build is done",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (64 MiB blob, 3 s wrk, 1 round, 200 small blobs, 500 tags, "
        "1,000 repositories, GC of 200 repositories)",
    )
    parser.add_argument(
        "--rounds", type=int, help="rounds per scenario (default 5, on S3 3; quick 1)"
    )
    parser.add_argument(
        "--gc-rounds", type=int, help="rounds of the GC scenario (default 3, on S3 1; quick 1)"
    )
    parser.add_argument("--blob-mib", type=int, help="blob size in MiB (default 1024, quick 64)")
    parser.add_argument(
        "--chunk-mib", type=int, help="PATCH chunk size in MiB (default 16, on S3 10)"
    )
    parser.add_argument("--wrk-seconds", type=int, help="wrk duration (default 10, quick 3)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument(
        "--list-connections",
        type=int,
        default=8,
        help="wrk connections for the tags list and catalog (default 8)",
    )
    parser.add_argument(
        "--layer-mib", type=int, help="size of each skopeo image layer (default 4, quick 1)"
    )
    parser.add_argument(
        "--small-blobs", type=int, help="small blobs (default 2000, on S3 1000; quick 200)"
    )
    parser.add_argument("--small-clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--tags", type=int, help="tags in one repository (default 5000)")
    parser.add_argument("--repositories", type=int, help="catalog size (default 10000)")
    parser.add_argument("--gc-repositories", type=int, help="GC store images (default 2000)")
    parser.add_argument("--gc-delete-every", type=int, default=2,
                        help="delete every Nth image of the GC store before collecting "
                             "(default 2: half of them)")
    parser.add_argument(
        "--limit-mib", type=int, help="bytes hashed/written for machine limits (default 1024)"
    )
    parser.add_argument(
        "--download-clients", type=int,
        help="concurrent downloads of one blob (default 400, quick 100)",
    )
    parser.add_argument(
        "--download-mib", type=int, default=30, help="size of the downloaded blob in MiB"
    )
    parser.add_argument(
        "--slow-seconds", type=int,
        help="how long the slow downloads read before closing (default 10, quick 5)",
    )
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated subset of {','.join(SCENARIOS)} (with --storage s3: of "
        f"{','.join(S3_SCENARIOS)})",
    )
    parser.add_argument(
        "--dockyard-cmd",
        default=os.environ.get(
            "DOCKYARD_BENCH_CMD", f"{sys.executable} -m dockyard serve {{config}}"
        ),
        help="command that serves a config file ({config} is replaced); env DOCKYARD_BENCH_CMD",
    )
    parser.add_argument(
        "--distribution-cmd",
        default="docker-registry serve {config}",
        help="command for the reference server ({config} is replaced)",
    )
    parser.add_argument(
        "--dockyard-gc-cmd",
        default=f"{sys.executable} -m dockyard garbage-collect --grace-period 0 --json {{config}}",
    )
    parser.add_argument(
        "--distribution-gc-cmd", default="docker-registry garbage-collect {config}"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="markdown report to write (default docs/performance.md for a full run; "
        "a --quick run writes nothing unless --out is given)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="before each run, wait up to this many seconds for other processes to go "
        "below 0.3 busy cores (0 disables)",
    )
    parser.add_argument("--tmpdir", type=Path, help="parent of the temporary work directory")
    parser.add_argument("--keep-tmp", action="store_true", help="keep blobs, stores and logs")
    args = parser.parse_args(argv)

    quick = bool(args.quick)
    on_s3 = args.storage == "s3"
    known = S3_SCENARIOS if on_s3 else SCENARIOS
    chosen = str(args.scenarios) if args.scenarios else ",".join(known)
    scenarios = tuple(s.strip() for s in chosen.split(",") if s.strip())
    unknown = [s for s in scenarios if s not in known]
    if unknown:
        parser.error(f"unknown scenarios{' on S3' if on_s3 else ''}: {', '.join(unknown)}")
    scenarios = tuple(s for s in known if s in scenarios)
    if not 1 <= args.s3_concurrency <= 256:
        parser.error("--s3-concurrency must be between 1 and 256")
    out: Path | None = args.out
    if out is None and not quick:
        out = REPO_ROOT / "docs" / "performance.md"
    # On S3 every 1 GiB push and GC round takes minutes: fewer rounds keep a full run short.
    rounds = _sized(args.rounds, 3 if on_s3 else 5, 1, quick)
    gc_rounds = _sized(args.gc_rounds, 1 if on_s3 else 3, 1, quick)
    chunk_mib = args.chunk_mib if args.chunk_mib is not None else (10 if on_s3 else 16)
    if not 1 <= chunk_mib <= 1024:
        parser.error("--chunk-mib must be between 1 and 1024")
    if not (1 <= rounds <= 50 and 1 <= gc_rounds <= 50):
        parser.error("--rounds and --gc-rounds must be between 1 and 50")
    sizes = {
        # Each small blob is a few S3 requests (tens of ms): half as many keep an S3 run short.
        "small": _sized(args.small_blobs, 1000 if on_s3 else 2000, 200, quick),
        "tags": _sized(args.tags, 5000, 500, quick),
        "repos": _sized(args.repositories, 10000, 1000, quick),
        "gc": _sized(args.gc_repositories, 2000, 200, quick),
    }
    if not all(1 <= value <= 100_000 for value in sizes.values()) or sizes["repos"] < 2:
        parser.error("sizes must be between 1 (2 for --repositories) and 100000")
    download_clients = _sized(args.download_clients, 400, 100, quick)
    slow_seconds = _sized(args.slow_seconds, 10, 5, quick)
    if not (1 <= download_clients <= 10_000 and 1 <= args.download_mib <= 4096
            and 1 <= slow_seconds <= 300):
        parser.error("--download-clients must be 1-10000, --download-mib 1-4096, "
                     "--slow-seconds 1-300")
    return Settings(
        quick=quick,
        rounds=rounds,
        gc_rounds=gc_rounds,
        blob_size=_sized(args.blob_mib, 1024, 64, quick) * MiB,
        chunk_size=int(chunk_mib) * MiB,
        wrk_duration=_sized(args.wrk_seconds, 10, 3, quick),
        wrk_threads=int(args.wrk_threads),
        wrk_connections=int(args.wrk_connections),
        list_connections=int(args.list_connections),
        layer_size=_sized(args.layer_mib, 4, 1, quick) * MiB,
        layer_count=5,
        small_blobs=sizes["small"],
        small_clients=max(1, min(int(args.small_clients), 256)),
        tags=sizes["tags"],
        repositories=sizes["repos"],
        gc_repositories=sizes["gc"],
        gc_delete_every=max(1, int(args.gc_delete_every)),
        limit_size=_sized(args.limit_mib, 1024, 256, quick) * MiB,
        download_clients=download_clients,
        download_size=int(args.download_mib) * MiB,
        slow_seconds=slow_seconds,
        dockyard_cmd=shlex.split(args.dockyard_cmd),
        distribution_cmd=shlex.split(args.distribution_cmd),
        dockyard_gc_cmd=shlex.split(args.dockyard_gc_cmd),
        distribution_gc_cmd=shlex.split(args.distribution_gc_cmd),
        out=out,
        tmp_parent=args.tmpdir,
        keep_tmp=bool(args.keep_tmp),
        scenarios=scenarios,
        quiet_wait=max(0.0, min(float(args.quiet_wait), 600.0)),
        command_line=" ".join(["python", "benchmarks/run.py", *map(shlex.quote, argv)]),
        storage=str(args.storage),
        s3_objectstore=str(args.s3_objectstore),
        s3_concurrency=int(args.s3_concurrency),
        index=str(args.index),
    )
