"""Process trees from /proc: CPU time, resident memory, and a peak-memory sampler."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .common import CLOCK_TICKS


def _stat_fields(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode(errors="replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _parents_and_times() -> tuple[dict[int, int], dict[int, float]]:
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        if fields is None:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
    return parents, times


def _descendants(root_pid: int, parents: dict[int, int]) -> set[int]:
    tree = {root_pid}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return tree


def process_tree_cpu(root_pid: int) -> float:
    """CPU seconds (user+system, including reaped children) of a process and its descendants."""
    parents, times = _parents_and_times()
    return sum(times.get(pid, 0.0) for pid in _descendants(root_pid, parents))


def tree_pids(root_pid: int) -> list[int]:
    parents, _ = _parents_and_times()
    if root_pid not in parents:
        return []
    return sorted(_descendants(root_pid, parents))


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of one process, in KiB."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    found[key] = int(value.split()[0])
    except OSError:
        pass
    return found


@dataclass
class TreeMemory:
    """Peak memory of one server's process tree, as seen by the sampler."""

    peak_rss_kib: int = 0  # the largest sum of VmRSS over the tree at one sample
    hwm_kib: dict[int, int] = field(default_factory=dict)  # per pid, largest VmHWM seen

    def observe(self, root_pid: int) -> None:
        total = 0
        for pid in tree_pids(root_pid):
            memory = memory_kib(pid)
            total += memory.get("VmRSS", 0)
            hwm = memory.get("VmHWM", 0)
            if hwm > self.hwm_kib.get(pid, 0):
                self.hwm_kib[pid] = hwm
        self.peak_rss_kib = max(self.peak_rss_kib, total)

    @property
    def hwm_sum_kib(self) -> int:
        return sum(self.hwm_kib.values())


class MemorySampler:
    """Samples the memory of registered process trees every `interval` seconds."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.trees: dict[str, tuple[Callable[[], int | None], TreeMemory]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def watch(self, label: str, pid_of: Callable[[], int | None]) -> TreeMemory:
        with self._lock:
            entry = self.trees.get(label)
            entry = (pid_of, TreeMemory() if entry is None else entry[1])
            self.trees[label] = entry
            return entry[1]

    def sample(self) -> None:
        with self._lock:
            entries = list(self.trees.values())
        for pid_of, memory in entries:
            pid = pid_of()
            if pid is not None:
                memory.observe(pid)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def reset_peak_rss(pids: list[int]) -> bool:
    """Make each process's VmHWM start again from its current RSS (clear_refs 5, Linux 4.0+).
    False when any process refused it (another user's, or an older kernel)."""
    done = True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as handle:
                handle.write("5")
        except FileNotFoundError:
            continue  # exited meanwhile
        except OSError:
            done = False
    return done


def memory_sum_kib(pids: list[int], key: str) -> int:
    """VmRSS or VmHWM of these processes, added up (KiB)."""
    return sum(memory_kib(pid).get(key, 0) for pid in pids)


class RssPeak:
    """Samples the summed VmRSS of a fixed set of processes every `interval` seconds, in a
    thread: a lower bound of their peak, where the sum of VmHWM is an upper bound (each
    process's own peak, whenever it came)."""

    def __init__(self, pids: list[int], interval: float = 0.1) -> None:
        self.pids = pids
        self.interval = interval
        self.peak_kib = memory_sum_kib(pids, "VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-peak", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_kib = max(self.peak_kib, memory_sum_kib(self.pids, "VmRSS"))

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.peak_kib = max(self.peak_kib, memory_sum_kib(self.pids, "VmRSS"))
