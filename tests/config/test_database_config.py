"""`database` takes GitLab's registry keys (and a libpq `dsn` under them), from config.yml
or REGISTRY_DATABASE_*, refuses what it cannot use naming the key, and never shows the
password."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from dockyard.config.loader import ConfigError, load_config
from dockyard.config.model import DatabaseConfig
from tests.config.test_config_keys import minimal, serve
from tests.support.server import free_port, run_registry

SECRET = "pa55-w0rd-n0t-t0-sh0w"


def write(tmp_path: Path, database: dict[str, Any] | None) -> Path:
    config = minimal(tmp_path)
    if database is not None:
        config["database"] = database
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_defaults_leave_the_database_off(tmp_path: Path) -> None:
    database = load_config(write(tmp_path, None), environ={}).database
    assert database == DatabaseConfig()
    assert (database.enabled, database.host, database.port, database.sslmode,
            database.connecttimeout, database.dsn) == (False, "", 5432, "prefer", 10.0, "")
    assert (database.pool.maxopen, database.pool.maxidle, database.pool.maxlifetime,
            database.pool.maxidletime) == (10, 2, None, None)
    assert conninfo_to_dict(database.conninfo()) == {
        "port": "5432", "sslmode": "prefer", "connect_timeout": "10"}


def test_gitlabs_keys_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, {
        "enabled": True, "host": "db.internal", "port": 6432, "user": "registry",
        "password": SECRET, "dbname": "registry", "sslmode": "verify-full",
        "sslcert": "/etc/ssl/client.pem", "sslkey": "/etc/ssl/client.key",
        "sslrootcert": "/etc/ssl/ca.pem", "connecttimeout": "5s", "draintimeout": "15s",
        "pool": {"maxopen": 30, "maxidle": 15, "maxlifetime": "30m", "maxidletime": "5m"}})
    config = load_config(path, environ={}, strict=True)
    database = config.database
    assert (database.enabled, database.host, database.port, database.user, database.password,
            database.dbname, database.sslmode, database.connecttimeout) == (
        True, "db.internal", 6432, "registry", SECRET, "registry", "verify-full", 5.0)
    assert (database.pool.maxopen, database.pool.maxidle, database.pool.maxlifetime,
            database.pool.maxidletime) == (30, 15, 1800.0, 300.0)
    assert database.pool.psycopg_pool_arguments() == {
        "min_size": 15, "max_size": 30, "max_lifetime": 1800.0, "max_idle": 300.0}
    assert conninfo_to_dict(database.conninfo()) == {
        "host": "db.internal", "port": "6432", "user": "registry", "password": SECRET,
        "dbname": "registry", "sslmode": "verify-full", "sslcert": "/etc/ssl/client.pem",
        "sslkey": "/etc/ssl/client.key", "sslrootcert": "/etc/ssl/ca.pem",
        "connect_timeout": "5"}
    # GitLab's keys for what dockyard does not do are accepted, and named as without effect.
    assert config.ignored_keys == ("database.draintimeout",)


def test_environment_overrides_every_key(tmp_path: Path) -> None:
    path = write(tmp_path, {"host": "from-file", "dbname": "registry", "password": "old"})
    database = load_config(path, environ={
        "REGISTRY_DATABASE_ENABLED": "true",
        "REGISTRY_DATABASE_HOST": "from-env",
        "REGISTRY_DATABASE_PORT": "6543",
        "REGISTRY_DATABASE_USER": "registry",
        "REGISTRY_DATABASE_PASSWORD": "0123",  # text, not the number 83
        "REGISTRY_DATABASE_SSLMODE": "require",
        "REGISTRY_DATABASE_CONNECTTIMEOUT": "2m",
        "REGISTRY_DATABASE_POOL_MAXOPEN": "4",
        "REGISTRY_DATABASE_POOL_MAXIDLE": "8",  # more idle than open: reduced, as in GitLab
        "REGISTRY_DATABASE_POOL_MAXLIFETIME": "1h",
    }, strict=True).database
    assert (database.enabled, database.host, database.port, database.user, database.password,
            database.dbname, database.sslmode, database.connecttimeout) == (
        True, "from-env", 6543, "registry", "0123", "registry", "require", 120.0)
    assert (database.pool.maxopen, database.pool.maxidle, database.pool.maxlifetime) == (
        4, 4, 3600.0)


def test_a_dsn_is_the_base_the_keys_override(tmp_path: Path) -> None:
    dsn = (f"postgresql://registry:{SECRET}@primary.internal:6543/registry"
           "?sslmode=require&application_name=dockyard&connect_timeout=3")
    path = write(tmp_path, {"enabled": True, "dsn": dsn})
    database = load_config(path, environ={}).database
    # Every field says what is in effect, taken from the string where no key is set.
    assert (database.host, database.port, database.user, database.password, database.dbname,
            database.sslmode, database.connecttimeout) == (
        "primary.internal", 6543, "registry", SECRET, "registry", "require", 3.0)
    assert conninfo_to_dict(database.conninfo())["application_name"] == "dockyard"
    overridden = load_config(path, environ={
        "REGISTRY_DATABASE_HOST": "replica.internal",
        "REGISTRY_DATABASE_PASSWORD": "other",
        "REGISTRY_DATABASE_SSLMODE": "verify-full",
    }).database
    assert conninfo_to_dict(overridden.conninfo()) == {
        "host": "replica.internal", "port": "6543", "user": "registry", "password": "other",
        "dbname": "registry", "sslmode": "verify-full", "application_name": "dockyard",
        "connect_timeout": "3"}
    from_env = load_config(write(tmp_path, None), environ={
        "REGISTRY_DATABASE_ENABLED": "yes",
        "REGISTRY_DATABASE_DSN": "host=/run/postgresql dbname=registry",
    }).database
    assert (from_env.enabled, from_env.host, from_env.dbname, from_env.port) == (
        True, "/run/postgresql", "registry", 5432)


def test_libpq_takes_the_connection_string(tmp_path: Path) -> None:
    """The string goes to libpq as it is: nothing it refuses (an unknown parameter, a bad
    value), only the refused connection of a port nobody listens on."""
    port = free_port()
    path = write(tmp_path, {"enabled": True, "host": "127.0.0.1", "port": port,
                            "dbname": "registry", "user": "registry", "password": SECRET,
                            "connecttimeout": "5s",
                            "dsn": "application_name=dockyard sslmode=disable"})
    database = load_config(path, environ={}).database
    with pytest.raises(psycopg.OperationalError) as raised:
        psycopg.connect(database.conninfo()).close()
    assert f"port {port} failed" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_the_password_is_never_shown(tmp_path: Path) -> None:
    path = write(tmp_path, {"enabled": True, "host": "db", "dbname": "registry",
                            "password": SECRET,
                            "dsn": f"sslpassword={SECRET}x password={SECRET}y"})
    config = load_config(path, environ={})
    assert config.database.password == SECRET
    for shown in (repr(config), str(config), repr(config.database), str(config.database),
                  config.database.redacted()):
        assert SECRET not in shown
    assert "password=********" in config.database.redacted()
    assert conninfo_to_dict(config.database.redacted())["host"] == "db"
    assert SECRET in config.database.conninfo()  # what the driver is given


def test_a_registry_with_a_database_section_does_not_log_the_password(tmp_path: Path
                                                                      ) -> None:
    config = {"database": {"host": "db", "dbname": "registry", "password": SECRET,
                           "sslmode": "require", "preparedstatements": True},
              "http": {"adr": ":5000"}}  # a typo elsewhere: warned about at start
    with run_registry(tmp_path, config=config) as running, running.client() as client:
        assert client.get("/v2/").status_code == 200
        logs = running.logs()
    assert "database.preparedstatements" in logs and "http.adr" in logs
    assert SECRET not in logs  # ...and no message shows the password


@pytest.mark.parametrize(("database", "message"), [
    ({"enabled": True}, "database.enabled: true needs a server: database.host and "
                        "database.dbname, or database.dsn"),
    ({"enabled": True, "host": "db"}, "database.enabled: true needs a server"),
    ({"enabled": "maybe"}, "database.enabled: expected true or false"),
    ({"port": "fifty"}, "database.port: expected a whole number"),
    ({"port": 70000}, "database.port: port must be between 1 and 65535"),
    ({"sslmode": "on"}, "database.sslmode: sslmode must be one of disable, allow, prefer, "
                        "require, verify-ca, verify-full, got 'on'"),
    ({"sslmode": "REQUIRE"}, "database.sslmode: sslmode must be one of"),
    ({"dsn": "sslmode=sometimes"}, "database.dsn: sslmode must be one of"),
    ({"host": ["a", "b"]}, "database.host: expected a string"),
    ({"connecttimeout": "soon"}, "database.connecttimeout: expected a duration"),
    ({"connecttimeout": 5}, "database.connecttimeout: must be at least 1s (a bare number "
                            "is nanoseconds"),
    ({"dsn": "connect_timeout=soon"}, "database.dsn: connect_timeout must be a whole number"),
    ({"dsn": "host=a,b port=5432,5433"}, "database.dsn: port must be one port number"),
    ({"pool": {"maxopen": 0}}, "database.pool.maxopen: must be at least 1"),
    ({"pool": {"maxidle": -1}}, "database.pool.maxidle: must not be negative"),
    ({"pool": {"maxlifetime": "0s"}}, "database.pool.maxlifetime: must be longer than zero"),
    ({"pool": {"maxidletime": "a while"}}, "database.pool.maxidletime: expected a duration"),
    ({"pool": 10}, "database.pool: expected a mapping"),
    # A misspelled security setting would silently connect without TLS: refused.
    ({"sslmdoe": "verify-full"}, "database.sslmdoe: unknown key (did you mean "
                                 "database.sslmode?)"),
    ({"pool": {"maxopne": 5}}, "database.pool.maxopne: unknown key (did you mean "
                               "database.pool.maxopen?)"),
])
def test_what_cannot_be_used_is_refused(tmp_path: Path, database: dict[str, Any],
                                        message: str) -> None:
    result = serve(tmp_path, {**minimal(tmp_path), "database": database})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("database", "env", "message"), [
    ({"password": {"secret": SECRET}}, {}, "database.password: expected a string, got a dict"),
    ({"password": [SECRET]}, {}, "database.password: expected a string, got a list"),
    ({"dsn": f"host=db password='{SECRET}"}, {}, "database.dsn: not a libpq connection "
                                                 "string"),
    ({"dsn": f"postgresql://registry:{SECRET}%zz@db/registry"}, {},
     "database.dsn: not a libpq connection string"),
    ({"dsn": f"host=db {SECRET}"}, {}, "database.dsn: not a libpq connection string"),
    ({}, {"REGISTRY_DATABASE": f"postgresql://registry:{SECRET}@db/registry"},
     "database: expected a mapping"),
    ({}, {"REGISTRY_DATABASE_DSN": f"postgresql://registry:{SECRET}@db/registry?x=1"},
     "database.dsn: not a libpq connection string"),
])
def test_errors_do_not_show_the_password(tmp_path: Path, database: dict[str, Any],
                                         env: dict[str, str], message: str) -> None:
    result = serve(tmp_path, {**minimal(tmp_path), "database": database}, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert SECRET not in result.stderr
    assert "Traceback" not in result.stderr


def test_loader_errors_name_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, {"enabled": True, "dsn": "dbname=registry"})
    with pytest.raises(ConfigError, match=r"database\.pool\.maxopen: expected a whole number"):
        load_config(path, environ={"REGISTRY_DATABASE_POOL_MAXOPEN": "many"})
