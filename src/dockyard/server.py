"""Running the ASGI app under granian (Rust HTTP server, with zero-copy file sends)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from dockyard import __version__
from dockyard.api.app import CONFIG_ENV, SUPERVISOR_ENV
from dockyard.config import Config

GRANIAN_LOG_LEVELS = {"debug": "debug", "info": "warning", "warn": "warning",
                      "warning": "warning", "error": "error", "fatal": "critical",
                      "panic": "critical"}


def prepare_storage(config: Config) -> None:
    """Fail before binding the port if the store cannot be used."""
    if config.storage.driver != "filesystem":
        return
    root = Path(config.storage.root_directory)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".dockyard-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise SystemExit(f"dockyard: storage.filesystem.rootdirectory {root} is not usable: "
                         f"{error.strerror}") from None


def prepare_login_throttle(config: Config) -> None:
    """Create the failed-login database once, before the workers: workers opening a new
    SQLite file at the same moment race to switch it to WAL, and the loser fails to start."""
    logins_checked = config.htpasswd is not None or (
        config.token_issuer is not None and bool(config.token_issuer.htpasswd))
    if config.storage.driver != "filesystem" or not logins_checked:
        return
    from dockyard.stores import make_login_throttle

    make_login_throttle(config).close()


def prepare_index(config: Config) -> None:
    """Check the metadata index against the store before serving (rebuilding what differs)."""
    if config.storage.driver != "filesystem":
        return
    from dockyard.console import err, synchronize_index
    from dockyard.stores import make_driver, make_index

    index = make_index(config)
    try:
        synchronize_index(make_driver(config), index, full=False, log=err)
    finally:
        index.close()


def serve(config: Config, config_path: str | None) -> None:
    from granian.constants import Interfaces, Loops, SSLProtocols
    from granian.log import LogLevels
    from granian.server import Server

    prepare_storage(config)
    prepare_index(config)
    prepare_login_throttle(config)
    os.environ[CONFIG_ENV] = os.path.abspath(config_path) if config_path else ""
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    http = config.http
    workers = 1 if config.storage.driver == "inmemory" else http.workers
    scheme = "https" if http.tls else "http"
    where = (config.storage.root_directory if config.storage.driver == "filesystem"
             else "memory (lost at exit)")
    print(f"dockyard {__version__} serving {scheme}://{http.host}:{http.port}{http.prefix}/v2/ "
          f"({workers} worker{'s' if workers > 1 else ''})\n"
          f"  storage: {where}\n"
          f"  config:  {config.source}\n"
          f"  deletes: {'enabled' if config.storage.delete_enabled else 'disabled'}"
          f"{'  (read-only maintenance mode)' if config.storage.read_only else ''}",
          file=sys.stderr, flush=True)
    options: dict[str, Any] = {}
    if http.tls:
        options.update(ssl_cert=Path(http.tls.certificate), ssl_key=Path(http.tls.key),
                       ssl_protocol_min=SSLProtocols(http.tls.minimum))
        if http.tls.client_cas:
            options.update(ssl_ca=Path(http.tls.client_cas[0]), ssl_client_verify=True)
    server = Server(
        "dockyard.api.app:create_app",
        address=http.host,
        port=http.port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        factory=True,
        log_level=LogLevels(GRANIAN_LOG_LEVELS.get(config.log.level, "warning")),
        log_access=False,
        websockets=False,
        backlog=2048,
        **options,
    )
    server.serve()
