"""The settings dockyard understands, with distribution's defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from dockyard.auth.policy import AccessRule
from dockyard.config.limits import DEFAULT_MAX_MANIFEST_SIZE
from dockyard.config.notifications import NotificationsConfig
from dockyard.config.retention import RetentionConfig

if TYPE_CHECKING:
    from dockyard.storage.s3 import S3Settings

HOUR = 3600.0


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    formatter: str = "text"
    fields: dict[str, str] = field(default_factory=dict)
    access_log: bool = True


@dataclass(frozen=True)
class TLSConfig:
    certificate: str
    key: str
    client_cas: tuple[str, ...] = ()
    minimum: str = "tls1.2"


@dataclass(frozen=True)
class HTTPTimeouts:
    """http.timeouts: how long a connection may wait on its client (dockyard only)."""

    head: float = 60.0  # a request head must arrive whole within this of its first byte
    idle: float = 75.0  # between requests: clients reuse a connection for a whole pull
    body: float = 300.0  # a request body that stops arriving for this long is cut off


@dataclass(frozen=True)
class HTTPConfig:
    host: str = ""  # http.addr's host; empty: every interface, IPv6 and IPv4
    port: int = 5000
    prefix: str = ""
    base_url: str = ""  # http.host: the externally visible URL used in Location headers
    relative_urls: bool = False
    headers: dict[str, list[str]] = field(
        default_factory=lambda: {"X-Content-Type-Options": ["nosniff"]}
    )
    tls: TLSConfig | None = None
    admin: bool = False  # http.admin.enabled: serve /admin/gc
    workers: int = 1  # the loader defaults it to the number of cores
    # http.draintimeout: on SIGTERM, how long requests in flight may take to finish.
    drain_timeout: float = 30.0
    timeouts: HTTPTimeouts = field(default_factory=HTTPTimeouts)
    # http.trustedproxies: networks (CIDR) whose X-Forwarded-For / Forwarded name the
    # client; from anyone else those headers are ignored (dockyard only).
    trusted_proxies: tuple[str, ...] = ()
    # http.debug.addr: where the debug server listens ("": none), and with
    # http.debug.prometheus.enabled, the path of its Prometheus metrics.
    debug: DebugServerConfig | None = None

    def local_url(self, path: str) -> str:
        """Where this machine reaches the server's `path` (below the prefix)."""
        host = self.host
        if host in ("", "::", "0.0.0.0"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{self.prefix}{path}"


@dataclass(frozen=True)
class DebugServerConfig:
    host: str
    port: int
    metrics_path: str | None = "/metrics"  # None: prometheus.enabled is false


@dataclass(frozen=True)
class UploadPurging:
    enabled: bool = True
    age: float = 168 * HOUR
    interval: float = 24 * HOUR
    dry_run: bool = False


@dataclass(frozen=True)
class GCSchedule:
    """storage.gc: garbage collection inside the server (dockyard's own section)."""

    enabled: bool = False
    interval: float = 24 * HOUR
    grace_period: float = HOUR
    delete_untagged: bool = False
    dry_run: bool = False
    # With storage.index.solewriter, scheduled collections look at what changed, and at
    # the whole store once this long after the last full pass.
    full_pass_interval: float = 168 * HOUR


@dataclass(frozen=True)
class StorageConfig:
    driver: str = "filesystem"
    # The store's directory; with S3, the local directory of the index and locks.
    root_directory: str = "/var/lib/registry"
    s3: S3Settings | None = None
    delete_enabled: bool = False
    read_only: bool = False
    # storage.redirect.disable: blob GETs streamed by the registry even where the driver
    # could send the client to the storage (S3's presigned URLs).
    redirect_disabled: bool = False
    upload_purging: UploadPurging = field(default_factory=UploadPurging)
    gc: GCSchedule = field(default_factory=GCSchedule)
    # How often the server looks for changes made to the store by something else (another
    # registry, a hand); 0: only at start and before garbage collection.
    index_resync_interval: float = 10 * 60.0
    # storage.index.solewriter: the operator's word that only dockyard (registries on this
    # index) writes the store, so garbage collection may trust the index to know every change.
    sole_writer: bool = False


@dataclass(frozen=True)
class UIConfig:
    """The web UI (dockyard only): on by default without a config file."""

    enabled: bool = False
    path: str = "/ui"  # where it is served, below http.prefix


@dataclass(frozen=True)
class HealthConfig:
    storage_driver_enabled: bool = False
    interval: float = 10.0
    threshold: int = 3


@dataclass(frozen=True)
class UpstreamConfig:
    """One registry the cache pulls from, for the names under `prefix` ("" : every name)."""

    prefix: str
    remoteurl: str
    username: str | None = None
    password: str | None = None
    # Seconds cached content is kept after it was fetched; 0: kept until deleted.
    ttl: float = 168 * 3600.0

    def __repr__(self) -> str:  # never the password, in a log or a traceback
        return (f"UpstreamConfig(prefix={self.prefix!r}, remoteurl={self.remoteurl!r}, "
                f"username={self.username!r}, ttl={self.ttl!r})")


@dataclass(frozen=True)
class ProxyConfig:
    """proxy: the pull-through cache (distribution's keys, plus `upstreams`)."""

    upstreams: tuple[UpstreamConfig, ...]
    # Seconds a tag checked with the upstream is taken as current without asking again.
    tag_freshness: float = 0.0
    # Seconds an upstream may take to answer (and between the bytes of a blob).
    timeout: float = 30.0


@dataclass(frozen=True)
class HtpasswdConfig:
    realm: str
    path: str


@dataclass(frozen=True)
class TokenConfig:
    """auth.token: bearer tokens from an authorization server (distribution's keys, plus
    `jwks`)."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: str = ""
    jwks: str = ""
    signing_algorithms: tuple[str, ...] = ()  # empty: any the trusted keys support


@dataclass(frozen=True)
class IssuerConfig:
    """auth.issuer: dockyard's own token issuer, served at /auth/token (dockyard only)."""

    key: str
    htpasswd: str = ""  # no file: anonymous clients only
    expiration: float = 300.0
    rules: tuple[AccessRule, ...] = ()
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class LoginThrottleConfig:
    """auth.throttle: how many failed logins a client may have (dockyard only)."""

    enabled: bool = True
    per_account: int = 10  # per client address and account, within the window
    per_client: int = 100  # per client address, all accounts together
    window: float = 60.0


# Connection parameters whose values are secrets: never printed.
SECRET_PARAMETERS = ("password", "sslpassword")
MASK = "********"


@dataclass(frozen=True)
class DatabasePool:
    """database.pool: the connection pool (GitLab's keys; psycopg_pool's terms in
    `psycopg_pool_arguments`)."""

    maxopen: int = 10  # connections open at most
    maxidle: int = 2  # connections kept open while idle (never more than maxopen)
    maxlifetime: float | None = None  # seconds a connection is used before it is replaced
    maxidletime: float | None = None  # seconds an idle connection above maxidle stays open

    def psycopg_pool_arguments(self) -> dict[str, float]:
        """Keyword arguments for psycopg_pool's pools (unset durations keep its defaults)."""
        arguments: dict[str, float] = {"min_size": self.maxidle, "max_size": self.maxopen}
        if self.maxlifetime is not None:
            arguments["max_lifetime"] = self.maxlifetime
        if self.maxidletime is not None:
            arguments["max_idle"] = self.maxidletime
        return arguments


@dataclass(frozen=True, repr=False)
class DatabaseConfig:
    """database: a PostgreSQL server for the metadata index (GitLab's registry keys).

    The loader fills every field with the value in effect: the key's own, else the one in
    `dsn`, else the default. `conninfo()` is what to connect with."""

    enabled: bool = False
    host: str = ""  # empty: libpq's default (the local Unix socket)
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    sslmode: str = "prefer"
    sslcert: str = ""
    sslkey: str = ""
    sslrootcert: str = ""
    connecttimeout: float = 10.0  # seconds; libpq counts whole seconds
    # A libpq connection string or postgresql:// URL: the base the keys above override,
    # and where parameters without a key of their own come from (application_name, ...).
    dsn: str = ""
    pool: DatabasePool = field(default_factory=DatabasePool)

    def conninfo(self) -> str:
        """The libpq connection string (with the password: give it to the driver only)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.dsn, **self._parameters())

    def location(self) -> str:
        """Where the database is, for people: postgresql://user@host:port/dbname."""
        user = f"{self.user}@" if self.user else ""
        return f"postgresql://{user}{self.host or 'localhost'}:{self.port}/{self.dbname}"

    def redacted(self) -> str:
        """The connection string with every secret masked, safe to print or log."""
        return _masked(self.conninfo())

    def _parameters(self) -> dict[str, str | None]:
        text = {"host": self.host, "user": self.user, "password": self.password,
                "dbname": self.dbname, "sslmode": self.sslmode, "sslcert": self.sslcert,
                "sslkey": self.sslkey, "sslrootcert": self.sslrootcert}
        parameters: dict[str, str | None] = {
            name: value or None for name, value in text.items()}
        parameters["port"] = str(self.port)
        # libpq waits whole seconds, and at least 2 (it reads 1 as 2).
        parameters["connect_timeout"] = str(math.ceil(self.connecttimeout))
        return parameters

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{item.name}={self._shown(item.name)!r}" for item in fields(self))
        return f"DatabaseConfig({shown})"

    def _shown(self, name: str) -> object:
        value = getattr(self, name)
        if name == "password":
            return MASK if value else ""
        if name == "dsn" and value:
            return _masked(value)
        return value


def _masked(conninfo: str) -> str:
    """A connection string with its secrets masked (all of it, if it cannot be read)."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parameters = conninfo_to_dict(conninfo)
    except ProgrammingError:  # the loader refuses such a string; never show it
        return MASK
    for name in SECRET_PARAMETERS:
        if parameters.get(name):
            parameters[name] = MASK
    return make_conninfo("", **parameters)


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    log: LogConfig = field(default_factory=LogConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    ui: UIConfig = field(default_factory=UIConfig)
    max_manifest_size: int = DEFAULT_MAX_MANIFEST_SIZE
    max_uploads_per_repository: int = 1000
    htpasswd: HtpasswdConfig | None = None
    token: TokenConfig | None = None
    token_issuer: IssuerConfig | None = None
    login_throttle: LoginThrottleConfig = field(default_factory=LoginThrottleConfig)
    proxy: ProxyConfig | None = None
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    source: str = "defaults"  # where the settings came from, for the start-up message
    unknown_keys: tuple[str, ...] = ()  # a warning per key nobody knows (typos)
    ignored_keys: tuple[str, ...] = ()  # distribution's keys set here that have no effect
