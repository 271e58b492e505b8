"""The PostgreSQL fixtures themselves: a reachable server and fresh databases per test."""

from __future__ import annotations

import os
import pwd

import pytest

from tests.support.postgres import PostgresServer, run_postgres

psycopg = pytest.importorskip("psycopg")


def user_tables(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    return [row[0] for row in rows]


def test_connects_to_its_own_database(postgres_server: PostgresServer, postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        database, user, answer = conn.execute(
            "SELECT current_database(), current_user, 6 * 7"
        ).fetchone()
    assert answer == 42
    assert user == postgres_server.user
    assert postgres_dsn.endswith(f"/{database}")
    assert database != "postgres"


def test_fresh_databases_are_distinct_and_empty(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    other_dsn = postgres_server.new_database()
    assert other_dsn != postgres_dsn
    assert user_tables(postgres_dsn) == []
    assert user_tables(other_dsn) == []

    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("CREATE TABLE tags (repository text, tag text, PRIMARY KEY (repository, tag))")
        conn.execute("INSERT INTO tags VALUES ('library/alpine', 'latest')")
    assert user_tables(postgres_dsn) == ["public.tags"]
    assert user_tables(other_dsn) == []


def test_private_server_runs_as_the_right_user(postgres_server: PostgresServer) -> None:
    if postgres_server.data_dir is None:
        pytest.skip("an external server (DOCKYARD_TEST_POSTGRES_DSN) has no local data directory")
    expected_user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    assert postgres_server.os_user == expected_user
    owner = pwd.getpwnam(expected_user).pw_uid
    assert postgres_server.data_dir.stat().st_uid == owner
    assert (postgres_server.data_dir / "PG_VERSION").stat().st_uid == owner

    with psycopg.connect(postgres_server.admin_dsn) as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("data_directory", "listen_addresses", "port")
        }
    assert settings == {
        "data_directory": str(postgres_server.data_dir),
        "listen_addresses": "127.0.0.1",
        "port": str(postgres_server.port),
    }


def test_private_server_is_stopped_and_removed_at_the_end() -> None:
    with run_postgres() as server:
        assert server.data_dir is not None
        root = server.data_dir.parent
        dsn = server.new_database()
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=5)
