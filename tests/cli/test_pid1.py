"""dockyard as PID 1 (a container's main process, here of a PID namespace of its own): a
SIGTERM before the server handles it ends the start at once (143), one after it drains as
anywhere else (0), and no handler is installed outside PID 1."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from dockyard import pid1
from tests.support.server import free_port, require_tool


@pytest.fixture
def sigterm_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    handler = signal.getsignal(signal.SIGTERM)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    monkeypatch.setattr(pid1, "_server_stopping", None)
    yield
    signal.signal(signal.SIGTERM, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def test_the_handler_is_installed_as_pid_1_alone(monkeypatch: pytest.MonkeyPatch,
                                                  sigterm_restored: None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    pid1.exit_on_sigterm()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])

    monkeypatch.setattr(pid1.os, "getpid", lambda: 1)
    pid1.exit_on_sigterm()
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    # Once the server is stopping, a SIGTERM (uvicorn's own, raised again) passes.
    pid1.hand_over(lambda: True)
    signal.raise_signal(signal.SIGTERM)


def test_a_disposition_set_by_another_is_kept(monkeypatch: pytest.MonkeyPatch,
                                              sigterm_restored: None) -> None:
    monkeypatch.setattr(pid1.os, "getpid", lambda: 1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pid1.exit_on_sigterm()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


def as_pid_1() -> list[str]:
    """The command prefix that runs a command as PID 1 of a new PID namespace, or a skip."""
    unshare = require_tool("unshare")
    prefix = [unshare, "--pid", "--fork", "--kill-child"]
    if os.geteuid() != 0:
        prefix[1:1] = ["--user", "--map-root-user"]
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("no PID namespaces here")
    return prefix


def namespace_init(outer: subprocess.Popen[bytes]) -> int:
    """The host PID of `unshare --fork`'s child, PID 1 inside."""
    children = Path(f"/proc/{outer.pid}/task/{outer.pid}/children")
    deadline = time.monotonic() + 10
    while not (found := children.read_text().split()):
        assert time.monotonic() < deadline and outer.poll() is None, "unshare did not fork"
        time.sleep(0.005)
    return int(found[0])


def sigterm_held(pid: int) -> bool:
    """Whether SIGTERM is blocked or caught by `pid`: not dropped, if it is a PID 1."""
    status = Path(f"/proc/{pid}/status").read_text()
    masks = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    bit = 1 << (signal.SIGTERM - 1)
    return bool((int(masks["SigBlk"], 16) | int(masks["SigCgt"], 16)) & bit)


@contextlib.contextmanager
def serve_as_pid_1(tmp_path: Path, prefix: list[str]) -> Iterator[Served]:
    """`dockyard serve` (one process) as PID 1, after `prefix`; killed at the end if still
    running (--kill-child takes PID 1 along, and the namespace with it)."""
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "storage": {"filesystem": {"rootdirectory": str(tmp_path / "store")}},
        "http": {"addr": f"127.0.0.1:{port}", "workers": 1}}))
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        outer = subprocess.Popen([*as_pid_1(), *prefix, sys.executable, "-m", "dockyard",
                                  "serve", str(config)], stdout=output, stderr=output)
    try:
        yield Served(outer, f"http://127.0.0.1:{port}", log)
    finally:
        if outer.poll() is None:
            outer.kill()
            outer.wait()


@dataclass
class Served:
    outer: subprocess.Popen[bytes]
    url: str
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def test_a_sigterm_while_python_starts_stops_it(tmp_path: Path) -> None:
    # As the image's entry point starts it: SIGTERM blocked, so that one sent before dockyard
    # is imported waits for its handler.
    with serve_as_pid_1(tmp_path, [require_tool("env"), "--block-signal=TERM"]) as served:
        init = namespace_init(served.outer)
        # Not before env has blocked it (unshare's fork would drop it): mostly while Python
        # starts, at worst once dockyard handles it.
        deadline = time.monotonic() + 10
        while not sigterm_held(init):
            assert time.monotonic() < deadline, served.logs()
            time.sleep(0.001)
        os.kill(init, signal.SIGTERM)
        assert served.outer.wait(timeout=20) == 143, served.logs()
        assert "stopped by SIGTERM" in served.logs()


def test_a_single_process_server_as_pid_1_still_exits_0_after_draining(
        tmp_path: Path) -> None:
    # uvicorn puts back the handler it found and raises the signal again once drained: it
    # must find the default disposition then, not dockyard's start-up handler.
    with serve_as_pid_1(tmp_path, []) as served:
        init = namespace_init(served.outer)
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline and served.outer.poll() is None, served.logs()
            try:
                # An answer, not only a connection: the bound socket queues connections
                # before the server (and its signal handlers) runs.
                if httpx.get(f"{served.url}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        os.kill(init, signal.SIGTERM)
        assert served.outer.wait(timeout=20) == 0, served.logs()
        assert "stopped by SIGTERM" not in served.logs()
