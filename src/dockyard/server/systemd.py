"""Readiness for systemd's Type=notify services: one datagram to $NOTIFY_SOCKET (the
protocol is that small; see sd_notify(3))."""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send `state` (READY=1, STOPPING=1, ...) to the service manager; False when not run by
    one (no NOTIFY_SOCKET) or it cannot be reached."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True
