"""Recording results, and timing one run with the quiet-wait and noisy-run logic."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .common import BenchError, log
from .machine import QUIET_CORES, host_busy_seconds, own_cpu_seconds, wait_for_quiet
from .servers import Server

Series = dict[str, dict[str, list[float]]]  # key -> server name -> values per round


@dataclass
class Results:
    values: Series = field(default_factory=dict)
    cpu: Series = field(default_factory=dict)
    wall: Series = field(default_factory=dict)
    client: Series = field(default_factory=dict)
    other: Series = field(default_factory=dict)
    # CPU seconds of the storage backend (the S3 server) during each run, where known.
    backend: Series = field(default_factory=dict)
    discarded: dict[str, int] = field(default_factory=dict)
    failures: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # Facts measured once (start-up times, memory, GC counts), by server name.
    facts: dict[str, dict[str, float]] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)  # correctness spot checks that passed

    def add(self, key: str, server: str, value: float) -> None:
        self.values.setdefault(key, {}).setdefault(server, []).append(value)

    def add_cpu(
        self, group: str, server: str, cpu: float, wall: float, client: float, other: float,
        backend: float | None = None,
    ) -> None:
        if backend is not None:
            self.backend.setdefault(group, {}).setdefault(server, []).append(backend)
        self.cpu.setdefault(group, {}).setdefault(server, []).append(cpu)
        self.wall.setdefault(group, {}).setdefault(server, []).append(wall)
        self.client.setdefault(group, {}).setdefault(server, []).append(client)
        self.other.setdefault(group, {}).setdefault(server, []).append(other)

    def fail(self, group: str, server: str, message: str) -> None:
        self.failures.setdefault(group, {}).setdefault(server, []).append(message)

    def fact(self, server: str, key: str, value: float) -> None:
        self.facts.setdefault(server, {})[key] = value

    def check(self, server: str, what: str) -> None:
        log(f"  {server:12} check: {what}")
        self.checks.append(f"{server}: {what}")

    def set_up_failed(self, group: str, server: str) -> bool:
        return any(
            message.startswith("set-up failed")
            for message in self.failures.get(group, {}).get(server, [])
        )


NOISY_CORES = 0.5
ATTEMPTS = 3
SHORT_RUN = 0.25  # seconds


def measured(
    results: Results,
    group: str,
    name: str,
    server: Server | None,
    action: Callable[[], dict[str, float]],
    quiet_wait: float,
    also: Server | None = None,
    attempts: int = ATTEMPTS,
    prepare: Callable[[], None] | None = None,
    backend_cpu: Callable[[], float] | None = None,
) -> bool:
    """Run one timed action, recording its metrics and the server's CPU time, or its failure.

    A run during which other processes kept more than NOISY_CORES cores busy is discarded
    and repeated (ATTEMPTS in all; the last one counts whatever the load). `server` is None
    for measurements of the machine itself; `also` is a second server the action loads
    (its CPU time counts as the server's); `attempts` 1 for an action that cannot be
    repeated; `prepare`, untimed, runs before every attempt (a server restart, so a repeat
    starts from the same state); `backend_cpu`, the CPU seconds so far of the storage
    backend the action loads (an S3 server on this machine), which then counts neither as
    the server's nor as other processes'. Runs shorter than SHORT_RUN are never discarded:
    /proc/stat counts in clock ticks, too coarse to tell their background load. True when
    the run succeeded.
    """
    servers = [s for s in (server, also) if s is not None]

    def server_cpu() -> float:
        return sum(s.cpu_seconds() for s in servers)

    for attempt in range(1, attempts + 1):
        try:
            if prepare is not None:
                prepare()
            for each in servers:
                each.ensure_running()
            os.sync()  # earlier writes must not be flushed during this run
            idle_load = wait_for_quiet(quiet_wait)
            host_before, own_before = host_busy_seconds(), own_cpu_seconds()
            cpu_before = server_cpu()
            backend_before = backend_cpu() if backend_cpu else 0.0
            started = time.perf_counter()
            values = action()
            wall = time.perf_counter() - started
            cpu = server_cpu() - cpu_before
            backend = backend_cpu() - backend_before if backend_cpu else None
            client = own_cpu_seconds() - own_before
            busy = host_busy_seconds() - host_before - cpu - client - (backend or 0.0)
            other = max(0.0, busy) / wall
        except BenchError as exc:
            message = str(exc)
            if server is not None and not server.alive():
                message += f"\n(server exited; log tail)\n{server.log_tail()}"
            results.fail(group, name, message)
            first = message.splitlines()[0] if message else ""
            log(f"  {name:12} {group}: FAILED: {first}")
            return False
        shown = ", ".join(f"{key}={value:.1f}" for key, value in values.items())
        detail = (
            f"server CPU {cpu:.2f}s, client {client:.2f}s, others {other:.2f} cores, in {wall:.2f}s"
        )
        if backend is not None:
            detail += f", S3 server CPU {backend:.2f}s"
        if idle_load >= QUIET_CORES:
            detail += f"; machine never got quiet, {idle_load:.1f} cores busy before"
        if other > NOISY_CORES and attempt < attempts and wall >= SHORT_RUN:
            results.discarded[name] = results.discarded.get(name, 0) + 1
            log(f"  {name:12} {group}: {shown} ({detail}) DISCARDED: machine busy")
            continue
        for key, value in values.items():
            results.add(key, name, value)
        results.add_cpu(group, name, cpu, wall, client, other, backend)
        log(f"  {name:12} {group}: {shown} ({detail})")
        return True
    return False
