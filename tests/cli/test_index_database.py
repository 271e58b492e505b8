"""The index in PostgreSQL from the operator's side: `dockyard index migrate`, a server that
refuses a schema it does not know or a database it cannot reach, and `index rebuild`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import yaml

from dockyard.index.schema import LATEST
from tests.support.oci import make_image, push_image
from tests.support.server import free_port, run_registry


def dockyard(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True,
                          text=True, timeout=timeout)


def write_config(tmp_path: Path, dsn: str, port: int | None = None) -> Path:
    config: dict[str, Any] = {
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "store")},
                    "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port or free_port()}"},
        "database": {"enabled": True, "dsn": dsn},
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def pushed(tmp_path: Path, dsn: str, images: list[tuple[str, str]]
           ) -> tuple[Path, dict[str, Any]]:
    """A migrated database and a store `images` (name, tag) were pushed to, once the
    server's background build of the index was done; the config's path and content."""
    config_path = write_config(tmp_path, dsn)
    assert dockyard("index", "migrate", str(config_path)).returncode == 0
    config: dict[str, Any] = yaml.safe_load(config_path.read_text())
    with run_registry(tmp_path, root=tmp_path / "store",
                      config={"database": config["database"]}
                      ) as running, running.client() as client:
        for name, tag in images:
            push_image(client, name, tag, make_image())
        deadline = time.monotonic() + 60
        while "index: built" not in running.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
    return config_path, config


def test_a_server_refuses_an_unmigrated_database_until_index_migrate(
        tmp_path: Path, postgres_dsn: str) -> None:
    port = free_port()
    config = write_config(tmp_path, postgres_dsn, port)
    refused = dockyard("serve", str(config), timeout=60)
    assert refused.returncode != 0
    assert "schema version 0" in refused.stderr
    assert "run `dockyard index migrate`" in refused.stderr
    with socket.socket() as probe:  # it never served
        assert probe.connect_ex(("127.0.0.1", port)) != 0

    migrated = dockyard("index", "migrate", str(config))
    assert migrated.returncode == 0, migrated.stderr
    for version in range(2, LATEST + 1):
        assert f"applied migration {version}:" in migrated.stdout
    again = dockyard("index", "migrate", str(config))
    assert again.returncode == 0, again.stderr
    assert "applied" not in again.stdout
    assert f"schema version {LATEST}" in again.stdout
    with psycopg.connect(postgres_dsn) as db:
        tables = {row[0] for row in db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"repositories", "tags", "manifests", "layers", "blobs", "meta",
            "login_attempts", "login_blocks"} <= tables


def test_a_server_refuses_a_schema_from_a_later_version(tmp_path: Path,
                                                        postgres_dsn: str) -> None:
    config = write_config(tmp_path, postgres_dsn)
    assert dockyard("index", "migrate", str(config)).returncode == 0
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    refused = dockyard("serve", str(config), timeout=60)
    assert refused.returncode != 0
    assert "version 99, newer than this dockyard knows" in refused.stderr
    migrate = dockyard("index", "migrate", str(config))
    assert migrate.returncode == 1
    assert "newer than this dockyard knows" in migrate.stderr


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    dsn = f"postgresql://dockyard:s3cret-pw@127.0.0.1:{free_port()}/registry"
    config = write_config(tmp_path, dsn)
    for command in (("serve", str(config)), ("index", "migrate", str(config))):
        result = dockyard(*command, timeout=60)
        assert result.returncode == 1, result
        assert "cannot use the index database postgresql://dockyard@127.0.0.1:" in \
            result.stderr, result.stderr
        assert "s3cret-pw" not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr


def test_index_rebuild_and_a_restart_keep_what_was_pushed(tmp_path: Path,
                                                          postgres_dsn: str) -> None:
    config_path, config = pushed(tmp_path, postgres_dsn, [("team/app", "v1"),
                                                           ("team/tool", "v2")])
    root = tmp_path / "store"
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute("DELETE FROM tags")  # lost: the store still has them
        db.execute("DELETE FROM repositories")
    rebuilt = dockyard("index", "rebuild", str(config_path))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "2 repositories" in rebuilt.stderr
    with run_registry(tmp_path, root=root, config={"database": config["database"]}
                      ) as running, running.client() as client:
        assert client.get("/v2/_catalog").json()["repositories"] == ["team/app", "team/tool"]
        assert client.get("/v2/team/tool/tags/list").json()["tags"] == ["v2"]


def test_index_rebuild_imports_a_store_into_a_new_database(tmp_path: Path,
                                                            postgres_dsn: str) -> None:
    """One command: the schema is made, then the store read in."""
    root = tmp_path / "store"
    with run_registry(tmp_path, root=root) as running, running.client() as client:
        push_image(client, "team/app", "v1", make_image())  # indexed in SQLite only
    config = write_config(tmp_path, postgres_dsn)
    imported = dockyard("index", "rebuild", str(config))
    assert imported.returncode == 0, imported.stderr
    assert "applied migration 2:" in imported.stdout
    assert "1 repositories" in imported.stderr
    with psycopg.connect(postgres_dsn) as db:
        assert db.execute("SELECT repository, tag FROM tags").fetchall() == [
            ("team/app", "v1")]
    served = yaml.safe_load(config.read_text())
    with run_registry(tmp_path, root=root, config={"database": served["database"]}
                      ) as running, running.client() as client:
        assert client.get("/v2/team/app/tags/list").json()["tags"] == ["v1"]


def test_index_check_names_what_differs_and_changes_nothing(tmp_path: Path,
                                                            postgres_dsn: str) -> None:
    config_path, _ = pushed(tmp_path, postgres_dsn, [("team/app", "v1"), ("team/tool", "v1")])
    same = dockyard("index", "check", str(config_path))
    assert same.returncode == 0, same.stdout + same.stderr
    assert "2 repositories in the store, 0 differ, 0 only in the index" in same.stdout
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute("DELETE FROM tags WHERE repository = 'team/tool'")
        db.execute("INSERT INTO repositories (name) VALUES ('team/ghost')")
    differs = dockyard("index", "check", str(config_path))
    assert differs.returncode == 1
    assert "differs from the store: team/tool" in differs.stdout
    assert "not in the store: team/ghost" in differs.stdout
    with psycopg.connect(postgres_dsn) as db:  # a check changes nothing
        assert db.execute("SELECT count(*) FROM tags WHERE repository = 'team/tool'"
                          ).fetchone() == (0,)
    assert dockyard("index", "rebuild", str(config_path)).returncode == 0
    assert dockyard("index", "check", str(config_path)).returncode == 0
