"""Running the ASGI app under uvicorn (uvloop, httptools), one process or several workers."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import math
import os
import signal
import socket
import sqlite3
import ssl
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, cast

from dockyard import __version__, pid1
from dockyard.api.app import CONFIG_ENV, SUPERVISOR_ENV
from dockyard.config import Config
from dockyard.config.model import TLSConfig
from dockyard.index.sqlite import index_path
from dockyard.registry.read_only import ReadOnlyMode, ReadOnlyState

SERVER_LOG_LEVELS = {"debug": "debug", "info": "info", "warn": "warning",
                     "warning": "warning", "error": "error", "fatal": "critical",
                     "panic": "critical"}
TLS_MINIMUM = {"tls1.2": ssl.TLSVersion.TLSv1_2, "tls1.3": ssl.TLSVersion.TLSv1_3}
BACKLOG = 2048
IPV6_UNAVAILABLE = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)
log = logging.getLogger("dockyard.server")


def prepare_storage(config: Config) -> None:
    """Fail before binding the port if the store cannot be used."""
    if config.storage.driver == "inmemory":
        return
    # With S3 the local directory holds only the index and the lock file.
    key = ("storage.s3.indexdirectory" if config.storage.s3 is not None
           else "storage.filesystem.rootdirectory")
    root = Path(config.storage.root_directory)
    from dockyard.storage.ownership import become_store_owner, ownership_problem

    # Before anything is written: what the server creates must be the owner's.
    switched = become_store_owner(str(root))
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".dockyard-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise SystemExit(f"dockyard: {key} {root} is not usable: "
                         f"{error.strerror}") from None
    from dockyard.stores import bucket_problem

    problem = bucket_problem(config)
    if problem is not None:
        raise SystemExit(problem)
    problem = None if switched else ownership_problem(str(root), "serving it")
    if problem is not None:
        raise SystemExit(problem)


def prepare_login_throttle(config: Config) -> None:
    """Create the failed-login database once, before the workers: workers opening a new
    SQLite file at the same moment race to switch it to WAL, and the loser fails to start.
    In PostgreSQL (`database.enabled`) its tables are the index schema's, made by
    `dockyard index migrate`."""
    logins_checked = config.htpasswd is not None or (
        config.token_issuer is not None and bool(config.token_issuer.htpasswd))
    if config.storage.driver == "inmemory" or config.database.enabled or not logins_checked:
        return
    from dockyard.auth.throttle import SQLiteLoginThrottle
    from dockyard.stores import make_login_throttle

    throttle = make_login_throttle(config)
    if isinstance(throttle, SQLiteLoginThrottle):
        throttle.close()


def prepare_index(config: Config) -> ReadOnlyState | None:
    """Check, before serving, that the metadata index can be used: its schema is one this
    dockyard knows, and it can be written. Whatever the store's size, this takes no time:
    comparing the index with the store (building it, the first time) is done in the
    background, once the server serves (registry.maintenance.resync_index_forever).
    Returns read-only maintenance mode as the index has it (None: the in-memory store)."""
    if config.storage.driver == "inmemory":
        return None
    from dockyard.index import SchemaMismatch
    from dockyard.stores import make_index

    try:
        index = make_index(config)
        mode = ReadOnlyMode(index, config.storage.read_only)
        try:
            if config.database.enabled:
                return check_database(index, mode)

            async def open_index() -> ReadOnlyState:
                await index.set_meta("opened_at", str(time.time()))
                return await mode.state()

            return asyncio.run(open_index())
        finally:
            index.close()
    except SchemaMismatch as error:
        raise SystemExit(f"dockyard: {error}") from None
    except (sqlite3.OperationalError, PermissionError) as error:
        path = index_path(config.storage.root_directory)
        raise SystemExit(
            f"dockyard: cannot write the index {path} ({error}); it and its directory must "
            f"be writable by the user the registry runs as (uid {os.geteuid()}): chown -R "
            f"that user {os.path.dirname(path)}") from None


def check_database(index: object, mode: ReadOnlyMode) -> ReadOnlyState:
    """Exit with a message unless the index's PostgreSQL server answers and holds the schema
    this dockyard knows (SchemaMismatch: the caller says so); read-only maintenance mode as
    the database has it."""
    import psycopg

    from dockyard.index import IndexUnavailable
    from dockyard.index.postgres import PostgresIndex

    assert isinstance(index, PostgresIndex)

    async def check() -> ReadOnlyState:
        try:
            await index.check_schema()
            return await mode.state()
        finally:
            await index.aclose()

    try:
        return asyncio.run(check())
    except (psycopg.Error, OSError) as error:
        raise SystemExit(f"dockyard: cannot use the index database {index.where}: "
                         f"{str(error).strip()}") from None
    except IndexUnavailable as error:
        raise SystemExit(f"dockyard: {error}") from None


def read_only_note(config: Config, state: ReadOnlyState | None) -> str:
    """How the banner says read-only maintenance mode is on ("" when off)."""
    if state is None:
        return "read-only maintenance mode" if config.storage.read_only else ""
    if not state.enabled:
        return ""
    switched = state.switch
    if state.source == "live" and switched is not None:
        by = switched.by or "an anonymous client"
        return (f"read-only maintenance mode, switched live by {by} at {switched.at}: "
                "POST /admin/readonly?enabled=false or `dockyard readonly --off` takes "
                "writes again")
    return "read-only maintenance mode"


def announce(config: Config, workers: int, address: str, as_json: bool,
             read_only: ReadOnlyState | None = None) -> None:
    """The start banner: what is served, from where, with which settings."""
    http = config.http
    scheme = "https" if http.tls else "http"
    where = (config.storage.root_directory if config.storage.driver == "filesystem"
             else "memory (lost at exit)")
    if config.storage.s3 is not None:
        s3 = config.storage.s3
        where = (f"s3://{s3.bucket}/{s3.rootdirectory.strip('/')} "
                 f"(index in {config.storage.root_directory})")
    if config.database.enabled:
        where = f"{where.partition(' (index in ')[0]} (index in {config.database.location()})"
    serving = (f"dockyard {__version__} serving {scheme}://{address}{http.prefix}/v2/ "
               f"({workers} worker{'s' if workers > 1 else ''})")
    deletes = "enabled" if config.storage.delete_enabled else "disabled"
    from dockyard.storage.ownership import user_name

    user = f"{user_name(os.geteuid())} (uid {os.geteuid()})"
    note = read_only_note(config, read_only)
    if as_json:
        fields: dict[str, object] = {
            "storage": where, "config": config.source, "deletes": deletes, "user": user,
            "readonly": bool(note), "workers": workers}
        if config.ignored_keys:
            fields["ignored"] = ", ".join(config.ignored_keys)
        log.info(serving, extra={"fields": fields})
        return
    print(f"{serving}\n"
          f"  storage: {where}\n"
          f"  config:  {config.source}\n"
          f"  user:    {user}\n"
          f"  deletes: {deletes}"
          f"{f'  ({note})' if note else ''}"
          + (f"\n  ignored: {', '.join(config.ignored_keys)} (accepted for compatibility "
             "with distribution, not implemented)" if config.ignored_keys else ""),
          file=sys.stderr, flush=True)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before any worker starts: a busy port or a bad address
    fails once, with a message, instead of in every worker. No host, or `::`, listens on
    IPv6 and IPv4 alike (as distribution does), or IPv4 alone where IPv6 is unavailable."""
    try:
        if host in ("", "::"):
            return _listen_everywhere(port, ipv4_fallback=host == "")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, backlog=BACKLOG)
    except OSError as error:
        raise SystemExit(f"dockyard: cannot listen on {url_host(host)}:{port}: "
                         f"{error.strerror or error}") from None


def _listen_everywhere(port: int, ipv4_fallback: bool) -> socket.socket:
    if socket.has_ipv6 and socket.has_dualstack_ipv6():
        try:
            return socket.create_server(("::", port), family=socket.AF_INET6,
                                        backlog=BACKLOG, dualstack_ipv6=True)
        except OSError as error:
            # IPv6 switched off in this kernel or namespace: IPv4 alone still serves.
            if not ipv4_fallback or error.errno not in IPV6_UNAVAILABLE:
                raise
    if not ipv4_fallback:
        raise OSError(errno.EAFNOSUPPORT, "IPv6 is not available here")
    return socket.create_server(("0.0.0.0", port), family=socket.AF_INET, backlog=BACKLOG)


def url_host(host: str) -> str:
    """The host as written in a URL: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host


def tls_context(tls: TLSConfig, _config: Any = None, _default: Any = None) -> ssl.SSLContext:
    """The server's TLS settings as distribution reads them: a minimum version, and client
    certificates required (verified against every listed CA) when `clientcas` is set."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_MINIMUM[tls.minimum]
    context.load_cert_chain(tls.certificate, tls.key)
    if tls.client_cas:
        for ca in tls.client_cas:
            context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def serve(config: Config, config_path: str | None) -> None:
    from dockyard import logs

    logs.configure(config.log)
    as_json = config.log.formatter != "text"
    if as_json:
        for message in config.unknown_keys:
            log.warning(message)
    try:
        _serve(config, config_path, as_json)
    except _StoppedBySignal as stop:
        # Cleaned up: now end as the signal's default action would (a service manager
        # reads a SIGTERM death as a clean stop, an exit status of 143 as a failure).
        signal.signal(stop.signum, signal.SIG_DFL)
        signal.raise_signal(stop.signum)
        raise
    except SystemExit as stop:
        if not (as_json and isinstance(stop.code, str)):
            raise
        # A start-up failure is one more line of the log, in its format.
        log.error(stop.code.removeprefix("dockyard: "))
        raise SystemExit(1) from None


def _serve(config: Config, config_path: str | None, as_json: bool) -> None:
    metrics_directory = None
    if config.http.debug is not None and config.http.debug.metrics_path is not None:
        from dockyard.metrics import share_between_workers

        metrics_directory = share_between_workers()
    try:
        _serve_with(config, config_path, as_json)
    finally:
        if metrics_directory is not None:
            from dockyard.metrics import remove_shared

            remove_shared(metrics_directory)


def _serve_with(config: Config, config_path: str | None, as_json: bool) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from dockyard.server.protocol import RegistryHttpProtocol

    prepare_storage(config)
    read_only = prepare_index(config)
    prepare_login_throttle(config)
    os.environ[CONFIG_ENV] = os.path.abspath(config_path) if config_path else ""
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    http = config.http
    workers = 1 if config.storage.driver == "inmemory" else http.workers
    server_config = uvicorn.Config(
        "dockyard.api.app:create_app",
        factory=True,
        host=http.host or "::",
        port=http.port,
        workers=workers,
        loop="uvloop",
        # Connection timeouts (http.timeouts) are the protocol's own, idle included.
        http=cast(type[asyncio.Protocol],
                  functools.partial(RegistryHttpProtocol, timeouts=http.timeouts)),
        ws="none",
        log_level=SERVER_LOG_LEVELS.get(config.log.level, "warning"),
        # uvicorn's lines go through dockyard's handler (dockyard.logs), in its format;
        # its access log is off, as dockyard writes its own.
        log_config=None,
        access_log=False,
        # The app reads X-Forwarded-*/Forwarded itself, and only where the config says so.
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=math.ceil(http.timeouts.idle),
        timeout_graceful_shutdown=math.ceil(http.drain_timeout),
        backlog=BACKLOG,
        ssl_context_factory=functools.partial(tls_context, http.tls) if http.tls else None,
    )
    # Bound before the banner, so "serving" is never printed for a port that is not.
    listener = listen(http.host, http.port)
    announce(config, workers, f"{url_host(str(listener.getsockname()[0]))}:{http.port}",
             as_json, read_only)
    if http.debug is not None:
        from dockyard.server.debug import serve_debug

        serve_debug(http)
    from dockyard.notifications.delivery import send_apart, senders_apart

    if senders_apart(config):
        send_apart(config)
    # Ready from here: the index is usable and connections queue on the bound socket until
    # a worker takes them.
    from dockyard.server.systemd import notify

    notify("READY=1")
    if workers > 1:
        # Its handlers replace dockyard's start-up one (dockyard.pid1) for good as it is
        # made, before any worker starts.
        Multiprocess(server_config, sockets=[listener]).run()
        return
    server = uvicorn.Server(server_config)
    pid1.hand_over(lambda: server.should_exit)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # After its drain uvicorn raises SIGTERM again with the handler it found; unwinding
        # before the default action lets the cleanups above run (the metrics directory).
        signal.signal(signal.SIGTERM, _exit_by_sigterm)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listener])
    if not server.started:
        raise SystemExit(1)


class _StoppedBySignal(SystemExit):
    """Unwinds a single-process server that uvicorn stopped on a signal (a SystemExit, as
    asyncio lets only those through), for `serve` to end the process by that signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


def _exit_by_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _StoppedBySignal(signum)
