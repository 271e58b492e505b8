"""Resident memory of a running server, measured from /proc."""

from __future__ import annotations

from pathlib import Path


def server_rss_kib(pid: int) -> int:
    """VmRSS of the server process and its worker children, added up (KiB)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for process in (pid, *map(int, children)):
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except FileNotFoundError:
            continue  # a helper process that has just exited
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total
