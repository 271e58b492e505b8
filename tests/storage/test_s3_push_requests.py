"""What one small blob push (POST, then a PUT with the body and the digest) costs in S3
requests, counted from the server's per-request log (`storage.s3.loglevel: debug`): the
blob goes straight to its key when it fits in one part, with no copy of it inside S3."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from tests.storage.test_s3_chunked_uploads import LogCursor, assert_nothing_left, path_of
from tests.storage.test_s3_serve import s3_section
from tests.support.oci import digest_of
from tests.support.s3 import S3Bucket
from tests.support.server import run_registry

# distribution 2.8.2 makes about a dozen requests for the same push; this was 19.
MAX_REQUESTS_PER_PUSH = 11


def test_a_small_monolithic_push_costs_few_requests(s3_bucket: S3Bucket,
                                                    tmp_path: Path) -> None:
    section = {**s3_section(s3_bucket, tmp_path), "loglevel": "debug"}
    config = {"storage": {"s3": section}, "http": {"workers": 1}}
    with run_registry(tmp_path, config=config, env={"REGISTRY_STORAGE": "s3"}) as server:
        # The background index build's listings are the start's, not the first push's.
        deadline = time.monotonic() + 60
        while "index: built" not in server.logs():
            assert time.monotonic() < deadline, server.logs()[-2000:]
            time.sleep(0.1)
        logs = LogCursor([server])
        logs.new_requests()  # what the start did
        costs = []

        def push_and_pull(repository: str, blob: bytes) -> None:
            started = httpx.post(f"{server.url}/v2/{repository}/blobs/uploads/", timeout=60)
            assert started.status_code == 202, started.text
            committed = httpx.put(server.url + path_of(started.headers["Location"]),
                                  params={"digest": digest_of(blob)}, content=blob,
                                  headers={"Content-Type": "application/octet-stream"},
                                  timeout=60)
            assert committed.status_code == 201, committed.text
            costs.append(logs.new_requests())
            pulled = httpx.get(f"{server.url}/v2/{repository}/blobs/{digest_of(blob)}",
                               timeout=60, follow_redirects=True)
            assert pulled.status_code == 200 and pulled.content == blob
            logs.new_requests()

        blob = b""
        for repository in ("small/one", "small/two"):
            blob = os.urandom(4096)
            push_and_pull(repository, blob)
        # The same blob again, in another repository: it is already stored.
        push_and_pull("small/three", blob)
    for cost in costs:
        assert len(cost.lines) <= MAX_REQUESTS_PER_PUSH, cost.lines
    # The blob is written once, at its own key: nothing is copied inside S3.
    assert costs[0].count("CopyObject") == 0 and costs[0].count("UploadPart") == 0
    assert_nothing_left(s3_bucket)
