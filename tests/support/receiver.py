"""A webhook receiver for notification tests: an HTTP server on a loopback port that keeps
every request it is sent, and can answer with an error or go away and come back."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.server import free_port


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.time() when it arrived

    @property
    def events(self) -> list[dict[str, Any]]:
        envelope = json.loads(self.body)
        events: list[dict[str, Any]] = envelope["events"]
        return events


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    deliveries: list[Delivery] = field(default_factory=list)
    # The status answered; anything but 2xx/3xx is a failure to the sender.
    status: int = 200
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for delivery in self.deliveries for event in delivery.events]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver.status
                if 200 <= status < 400:
                    with receiver._lock:
                        receiver.deliveries.append(Delivery(
                            self.path, {k.lower(): ", ".join(self.headers.get_all(k) or [])
                                        for k in self.headers},
                            body, time.time()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def stop(self) -> None:
        """Go away: the port refuses connections until `start` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 20
                 ) -> list[dict[str, Any]]:
        """The events received so far, once `check` holds for them (AssertionError with
        what arrived if it does not within `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if check(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"events never matched; got {json.dumps(events)[:4000]}")
            time.sleep(0.05)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def endpoint_config(receiver: Receiver, name: str = "receiver", **extra: Any) -> dict[str, Any]:
    """`notifications` settings sending every event to `receiver`, retrying quickly."""
    endpoint = {"name": name, "url": receiver.url, "timeout": "1s", "threshold": 3,
                "backoff": "200ms", **extra}
    return {"notifications": {"events": {"includereferences": True},
                              "endpoints": [endpoint]}}
