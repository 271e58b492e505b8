"""A worker process that dies is logged (and replaced), and the registry keeps serving."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import Storage, run_registry


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children
            if b"multiprocessing" in Path(f"/proc/{child}/cmdline").read_bytes()
            and b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()]


@pytest.mark.filesystem_only(reason="the storage plays no part: worker "
                             "processes are replaced whatever they serve")
def test_a_killed_worker_is_logged_and_replaced(tmp_path: Path, storage: Storage) -> None:
    with run_registry(tmp_path, config={"http": {"workers": 2}}, storage=storage) as registry:
        deadline = time.monotonic() + 30
        while len(workers_of(registry.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        victim = workers_of(registry.process.pid)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while f"worker [{victim}] died" not in registry.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
        logs = registry.logs()
        assert f"worker [{victim}] died; starting another" in logs, logs
        line = next(line for line in logs.splitlines() if f"[{victim}] died" in line)
        assert "level=warning" in line
        # uvicorn's own chatter stays out of an info-level log.
        assert "Started server process" not in logs
        while len(workers_of(registry.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert victim not in workers_of(registry.process.pid)
        assert len(workers_of(registry.process.pid)) == 2
        for _ in range(10):
            assert httpx.get(registry.url + "/v2/", timeout=10).status_code == 200
