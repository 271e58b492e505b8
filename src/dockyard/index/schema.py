"""The index's schema, as numbered migrations shared by both databases.

A version number means the same tables in SQLite and PostgreSQL. The database records the
version it is at (`meta.schema_version`); a server refuses a database whose version it does
not know (written by a later dockyard), and `dockyard index migrate` brings an older one up
to date. The embedded SQLite index migrates itself when opened: it belongs to one store
and one registry, and can always be rebuilt from the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.index.base import SchemaMismatch

VERSION_KEY = "schema_version"
META_TABLE = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    sqlite: str
    postgres: str
    # What a build from the store writes changed: the index must be built again.
    rebuild: bool = False


# Version 2 is where SQLite indexes made before migrations were numbered already are.
_SQLITE_2 = """
CREATE TABLE IF NOT EXISTS repositories (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
    repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (repository, tag)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS manifests (
    repository TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL,
    size INTEGER NOT NULL, subject TEXT, artifact_type TEXT, annotations TEXT,
    PRIMARY KEY (repository, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifests_by_subject ON manifests (repository, subject)
    WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS layers (
    repository TEXT NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (repository, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS layers_by_digest ON layers (digest);
CREATE TABLE IF NOT EXISTS manifest_references (
    repository TEXT NOT NULL, manifest TEXT NOT NULL, digest TEXT NOT NULL,
    PRIMARY KEY (repository, manifest, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS references_by_digest ON manifest_references (digest);
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, created REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS links_written (
    repository TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
"""

# Names, tags and digests compare byte by byte ("C"), as distribution orders its listings.
_POSTGRES_2 = """
CREATE TABLE repositories (name TEXT COLLATE "C" PRIMARY KEY);
CREATE TABLE tags (
    repository TEXT COLLATE "C" NOT NULL, tag TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL, PRIMARY KEY (repository, tag));
CREATE TABLE manifests (
    repository TEXT COLLATE "C" NOT NULL, digest TEXT COLLATE "C" NOT NULL,
    media_type TEXT NOT NULL, size BIGINT NOT NULL, subject TEXT COLLATE "C",
    artifact_type TEXT, annotations TEXT, PRIMARY KEY (repository, digest));
CREATE INDEX manifests_by_subject ON manifests (repository, subject)
    WHERE subject IS NOT NULL;
CREATE TABLE layers (
    repository TEXT COLLATE "C" NOT NULL, digest TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (repository, digest));
CREATE INDEX layers_by_digest ON layers (digest);
CREATE TABLE manifest_references (
    repository TEXT COLLATE "C" NOT NULL, manifest TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL, PRIMARY KEY (repository, manifest, digest));
CREATE INDEX references_by_digest ON manifest_references (digest);
CREATE TABLE blobs (
    digest TEXT COLLATE "C" PRIMARY KEY, size BIGINT NOT NULL,
    created DOUBLE PRECISION NOT NULL);
CREATE TABLE links_written (
    repository TEXT COLLATE "C" PRIMARY KEY, at DOUBLE PRECISION NOT NULL);
-- Counts commits: every instance's listing caches compare it (see PostgresIndex.version).
CREATE TABLE commits (id INTEGER PRIMARY KEY, counter BIGINT NOT NULL);
INSERT INTO commits (id, counter) VALUES (1, 0);
"""

# The failed-login throttle of registries sharing the database (auth.throttle_postgres).
# Nothing in SQLite: an embedded index belongs to one host, whose throttle has a file of
# its own.
_POSTGRES_3 = """
CREATE TABLE login_attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, client TEXT NOT NULL,
    account TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE INDEX login_attempts_by_client ON login_attempts (client, account, at);
CREATE INDEX login_attempts_by_time ON login_attempts (at);
-- kind: "account" (the client's failures on that account) or "client" (its failures on
-- all accounts, with account '').
CREATE TABLE login_blocks (
    client TEXT NOT NULL, kind TEXT NOT NULL, account TEXT NOT NULL,
    until DOUBLE PRECISION NOT NULL, PRIMARY KEY (client, kind, account));
"""

# Digests that may have become garbage: blobs uploaded, and what a forgotten manifest, layer
# link or repository referenced. An incremental collection looks at these alone; every blob
# recorded so far starts as one, and the next collection is a full pass (what was deleted
# before is in no table). Manifests are looked up by digest when the sweep checks its
# candidates.
_SQLITE_4 = """
CREATE TABLE IF NOT EXISTS gc_candidates (digest TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT INTO gc_candidates (digest) SELECT digest FROM blobs WHERE true ON CONFLICT DO NOTHING;
CREATE INDEX IF NOT EXISTS manifests_by_digest ON manifests (digest);
INSERT INTO meta (key, value) VALUES ('gc_needs_full_pass', 'yes')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
"""

_POSTGRES_4 = """
CREATE TABLE gc_candidates (digest TEXT COLLATE "C" PRIMARY KEY);
INSERT INTO gc_candidates (digest) SELECT digest FROM blobs ON CONFLICT DO NOTHING;
CREATE INDEX manifests_by_digest ON manifests (digest);
INSERT INTO meta (key, value) VALUES ('gc_needs_full_pass', 'yes')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
"""

# What each reference's descriptor says the referenced blob or manifest weighs, so sizes
# come from the index alone (a store written by distribution has no sizes elsewhere but its
# blobs). Rows written before are filled by the rebuild.
_SQLITE_5 = "ALTER TABLE manifest_references ADD COLUMN size INTEGER"
_POSTGRES_5 = "ALTER TABLE manifest_references ADD COLUMN size BIGINT"

# The notification outbox: each event is written in the transaction of the change it
# describes, and every endpoint's cursor says how far it has been delivered. AUTOINCREMENT:
# an id is never used twice, even after the newest events are dropped, so a cursor never
# passes an event written later.
_SQLITE_6 = """
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS event_deliveries (
    endpoint TEXT PRIMARY KEY, delivered INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_attempt REAL,
    last_success REAL) WITHOUT ROWID;
"""

_POSTGRES_6 = """
CREATE TABLE events (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE event_deliveries (
    endpoint TEXT PRIMARY KEY, delivered BIGINT NOT NULL, sent BIGINT NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_attempt DOUBLE PRECISION,
    last_success DOUBLE PRECISION);
"""

# When each tag was last pushed through dockyard, for retention policies. Tags read from
# the store (written by distribution, or rebuilt) have none: their link's time stands in.
_SQLITE_7 = "ALTER TABLE tags ADD COLUMN pushed REAL"
_POSTGRES_7 = "ALTER TABLE tags ADD COLUMN pushed DOUBLE PRECISION"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "repositories, tags, manifests, layer links, references, blobs",
              _SQLITE_2, _POSTGRES_2, rebuild=True),
    Migration(3, "login throttle", "", _POSTGRES_3),
    Migration(4, "garbage collection candidates", _SQLITE_4, _POSTGRES_4),
    Migration(5, "sizes of what manifests reference", _SQLITE_5, _POSTGRES_5, rebuild=True),
    Migration(6, "notification outbox", _SQLITE_6, _POSTGRES_6),
    Migration(7, "push times of tags", _SQLITE_7, _POSTGRES_7),
)
LATEST = MIGRATIONS[-1].version


def pending(current: int) -> list[Migration]:
    """The migrations a database at `current` still needs, in order; SchemaMismatch if it
    is newer than this dockyard knows."""
    if current > LATEST:
        raise SchemaMismatch(
            f"the index's schema is version {current}, newer than this dockyard knows "
            f"({LATEST}): it was written by a later dockyard; run that version")
    return [migration for migration in MIGRATIONS if migration.version > current]
