"""`database`: the PostgreSQL server of the metadata index, with GitLab's registry keys, an
optional libpq connection string (`dsn`) under them, and REGISTRY_DATABASE_* overrides.
Secrets never appear in a message."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from dockyard.config.model import DatabaseConfig, DatabasePool

WHERE = "database."
# libpq's values, spelled as libpq takes them.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
TEXT_KEYS = ("host", "user", "dbname", "sslcert", "sslkey", "sslrootcert")
# libpq's messages quote pieces of the string, which may be the password.
QUOTED = re.compile(r'"[^"]*"')

class DatabaseConfigError(ValueError):
    pass


def database_config(section: Mapping[str, Any],
                    as_bool: Callable[[Mapping[str, Any], str, str, bool], bool],
                    as_int: Callable[[Mapping[str, Any], str, str, int], int],
                    as_str: Callable[[Mapping[str, Any], str, str, str], str],
                    as_duration: Callable[[Any, str], float]) -> DatabaseConfig:
    """The settings from `database` (the loader's readers convert each value). A key left
    out (or empty) takes the value from `dsn`, else the default."""
    defaults = DatabaseConfig()
    dsn = _secret(section, "dsn")
    from_dsn = _parse_dsn(dsn)

    def given(key: str) -> bool:
        return section.get(key) not in (None, "")

    def text(key: str, default: str = "") -> str:
        if given(key):
            return as_str(section, key, WHERE, "").strip()
        return from_dsn.get(key) or default

    texts = {key: text(key) for key in TEXT_KEYS}
    password = _secret(section, "password") or from_dsn.get("password", "")
    sslmode = text("sslmode", defaults.sslmode)
    if sslmode not in SSL_MODES:
        key = "sslmode" if given("sslmode") else "dsn"
        raise DatabaseConfigError(f"{WHERE}{key}: sslmode must be one of "
                                  f"{', '.join(SSL_MODES)}, got {sslmode!r}")
    config = DatabaseConfig(
        enabled=as_bool(section, "enabled", WHERE, False),
        password=password,
        sslmode=sslmode,
        port=_port(section, as_int, from_dsn) if given("port") or from_dsn.get("port")
        else defaults.port,
        connecttimeout=_connect_timeout(section, as_duration, from_dsn, defaults),
        dsn=dsn,
        pool=_pool(section.get("pool"), as_int, as_duration),
        **texts,
    )
    if config.enabled and not dsn and not (config.host and config.dbname):
        raise DatabaseConfigError(
            f"{WHERE}enabled: true needs a server: {WHERE}host and {WHERE}dbname, or "
            f"{WHERE}dsn (a libpq connection string or postgresql:// URL)")
    return config


def _secret(section: Mapping[str, Any], key: str) -> str:
    """A password or connection string: text, refused without showing the value."""
    value = section.get(key)
    if value is None:
        return ""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise DatabaseConfigError(f"{WHERE}{key}: expected a string, got a "
                              f"{type(value).__name__} (the value is not shown)")


def _parse_dsn(dsn: str) -> dict[str, str]:
    if not dsn:
        return {}
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        parameters = conninfo_to_dict(dsn)
    except ProgrammingError as error:
        reason = QUOTED.sub('"..."', str(error).strip())
        raise DatabaseConfigError(
            f"{WHERE}dsn: not a libpq connection string (host=... dbname=...) or "
            f"postgresql:// URL: {reason}") from None
    return {name: str(value) for name, value in parameters.items() if value is not None}


def _port(section: Mapping[str, Any], as_int: Callable[[Mapping[str, Any], str, str, int], int],
          from_dsn: Mapping[str, str]) -> int:
    if section.get("port") not in (None, ""):
        key, port = "port", as_int(section, "port", WHERE, 0)
    else:
        key, text = "dsn", from_dsn["port"].strip()
        if not text.isascii() or not text.isdigit():
            raise DatabaseConfigError(f"{WHERE}dsn: port must be one port number, "
                                      f"got {text!r}")
        port = int(text)
    if not 0 < port < 65536:
        raise DatabaseConfigError(f"{WHERE}{key}: port must be between 1 and 65535, "
                                  f"got {port}")
    return port


def _connect_timeout(section: Mapping[str, Any], as_duration: Callable[[Any, str], float],
                     from_dsn: Mapping[str, str], defaults: DatabaseConfig) -> float:
    raw = section.get("connecttimeout")
    if raw not in (None, ""):
        seconds = as_duration(raw, WHERE + "connecttimeout")
        if seconds < 1:
            raise DatabaseConfigError(
                f"{WHERE}connecttimeout: must be at least 1s (a bare number is "
                f"nanoseconds, as in distribution: write 10s), got {raw!r}")
        return seconds
    text = from_dsn.get("connect_timeout", "").strip()
    if not text:
        return defaults.connecttimeout
    # libpq's own parameter: whole seconds.
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise DatabaseConfigError(f"{WHERE}dsn: connect_timeout must be a whole number of "
                                  f"seconds, at least 1, got {text!r}")
    return float(text)


POOL_WHERE = WHERE + "pool."


def _pool(raw: Any, as_int: Callable[[Mapping[str, Any], str, str, int], int],
          as_duration: Callable[[Any, str], float]) -> DatabasePool:
    if raw is None:
        return DatabasePool()
    if not isinstance(raw, Mapping):
        raise DatabaseConfigError(f"{WHERE}pool: expected a mapping, got {raw!r}")
    defaults = DatabasePool()
    maxopen = as_int(raw, "maxopen", POOL_WHERE, defaults.maxopen)
    if maxopen < 1:
        raise DatabaseConfigError(f"{POOL_WHERE}maxopen: must be at least 1, got {maxopen}")
    maxidle = as_int(raw, "maxidle", POOL_WHERE, defaults.maxidle)
    if maxidle < 0:
        raise DatabaseConfigError(f"{POOL_WHERE}maxidle: must not be negative, got {maxidle}")

    def duration(key: str) -> float | None:
        value = raw.get(key)
        if value in (None, ""):
            return None
        seconds = as_duration(value, POOL_WHERE + key)
        if seconds <= 0:
            raise DatabaseConfigError(f"{POOL_WHERE}{key}: must be longer than zero "
                                      "(leave it out for the pool's default)")
        return seconds

    # As in GitLab's registry: no more idle connections than open ones.
    return DatabasePool(maxopen=maxopen, maxidle=min(maxidle, maxopen),
                        maxlifetime=duration("maxlifetime"),
                        maxidletime=duration("maxidletime"))
