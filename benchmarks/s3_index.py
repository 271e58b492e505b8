#!/usr/bin/env python3
"""How long dockyard takes to index a bucket distribution wrote (its first start on it, or
`dockyard index rebuild`).

    DOCKYARD_TEST_S3_ENDPOINT=... _ACCESS_KEY=... _SECRET_KEY=... _BUCKET=... \\
        python benchmarks/s3_index.py [--repositories 500] [--tags 2] [--rounds 3]

Writes distribution's layout straight into a key prefix of its own in the bucket (each
repository with `--tags` tags, each tag its own manifest over a shared config and a layer of
the repository's own, every link distribution writes), then times `dockyard index rebuild`
into an empty index directory, `--rounds` times; then, on the last index, a
`garbage-collect --dry-run` (which first compares the index with the bucket, then lists
the blobs); and deletes the prefix.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.distribution_layout import layout_of
from tests.support.s3 import botocore_client, empty_bucket, external_service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=500)
    parser.add_argument("--tags", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    service = external_service()
    assert service.bucket is not None
    client = botocore_client(service)
    prefix = f"bench-index-{uuid.uuid4().hex[:8]}"
    objects = layout_of(f"{prefix}/docker/registry/v2", arguments.repositories, arguments.tags)
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda item: client.put_object(Bucket=service.bucket, Key=item[0],
                                                     Body=item[1]), objects.items()))
    print(f"{len(objects)} objects for {arguments.repositories} repositories x "
          f"{arguments.tags} tags under {prefix}/", flush=True)
    times = []
    collections = []
    try:
        for number in range(arguments.rounds):
            with tempfile.TemporaryDirectory() as scratch:
                section: dict[str, Any] = {
                    "bucket": service.bucket, "region": service.region,
                    "regionendpoint": service.endpoint, "accesskey": service.access_key,
                    "secretkey": service.secret_key, "forcepathstyle": service.path_style,
                    "secure": service.endpoint.startswith("https:"),
                    "rootdirectory": f"/{prefix}", "indexdirectory": scratch}
                config = Path(scratch) / "config.yml"
                config.write_text(yaml.safe_dump({"version": 0.1, "storage": {"s3": section}}))
                started = time.monotonic()
                command = [sys.executable, "-m", "dockyard", "index", "rebuild", str(config)]
                if os.environ.get("BENCH_PROFILE"):
                    command[1:3] = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"],
                                    "-m", "dockyard"]
                result = subprocess.run(command, capture_output=True, text=True, check=False)
                elapsed = time.monotonic() - started
                if result.returncode != 0:
                    raise SystemExit(result.stderr)
                print(f"  {elapsed:.2f}s: {result.stderr.strip().splitlines()[-1]}", flush=True)
                times.append(elapsed)
                if number == arguments.rounds - 1:
                    for _ in range(arguments.rounds):
                        started = time.monotonic()
                        result = subprocess.run(
                            [sys.executable, "-m", "dockyard", "garbage-collect", "--dry-run",
                             "--grace-period", "0", str(config)],
                            capture_output=True, text=True, check=False)
                        collections.append(time.monotonic() - started)
                        if result.returncode != 0:
                            raise SystemExit(result.stderr)
                        print(f"  gc --dry-run {collections[-1]:.2f}s", flush=True)
    finally:
        empty_bucket(client, service.bucket, f"{prefix}/")
    print(f"index rebuild: median {statistics.median(times):.2f}s over {len(times)} rounds")
    print(f"garbage-collect --dry-run: median {statistics.median(collections):.2f}s")


if __name__ == "__main__":
    main()
