"""Reading config.yml the way distribution does, then checking every key we use."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dockyard.auth.policy import ACTIONS, REGISTRY_ACTIONS, REGISTRY_RESOURCES, AccessRule
from dockyard.config.database import DatabaseConfigError, database_config
from dockyard.config.keys import KeyReport, check_keys
from dockyard.config.model import (
    Config,
    DatabaseConfig,
    DebugServerConfig,
    GCSchedule,
    HealthConfig,
    HtpasswdConfig,
    HTTPConfig,
    HTTPTimeouts,
    IssuerConfig,
    LogConfig,
    LoginThrottleConfig,
    ProxyConfig,
    StorageConfig,
    TLSConfig,
    TokenConfig,
    UIConfig,
    UploadPurging,
)
from dockyard.config.notifications import (
    NotificationsConfig,
    NotificationsConfigError,
    notifications_config,
)
from dockyard.config.proxy import ProxyConfigError, proxy_config
from dockyard.config.retention import RetentionConfig, RetentionConfigError, retention_config
from dockyard.config.s3 import S3ConfigError, s3_settings

ENV_PREFIX = "REGISTRY_"
# Set to 1 (or pass `dockyard serve --strict-config`) to make unknown keys an error.
STRICT_ENV = "DOCKYARD_STRICT_CONFIG"
LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "fatal", "panic")
LOG_FORMATTERS = ("text", "json", "logstash")
# ASCII digits: `\d` would also take other scripts' digits (float() reads them).
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
# The words YAML 1.1 (and so distribution's config) reads as true or false.
YAML_BOOLEANS = {**dict.fromkeys(("true", "yes", "y", "on"), True),
                 **dict.fromkeys(("false", "no", "n", "off"), False)}
DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                  "h": 3600.0}


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the key."""

    def __init__(self, message: str, unknown_keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        # Warnings about misspelled keys found before the error, worth showing with it
        # (a misspelled driver name is what makes "no storage driver" happen).
        self.unknown_keys = unknown_keys


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "share")
    return Path(base) / "dockyard"


def default_config() -> Config:
    """Working settings without any file: port 5000, deletes on, a per-user data folder."""
    return load_config(None)


def load_config(path: str | os.PathLike[str] | None,
                environ: Mapping[str, str] | None = None,
                strict: bool | None = None) -> Config:
    """The settings in `path` (None: defaults) with REGISTRY_* overrides applied. Unknown
    keys are reported in `Config.unknown_keys`, or refused when `strict` (default: the
    DOCKYARD_STRICT_CONFIG variable)."""
    environ = os.environ if environ is None else environ
    if strict is None:
        strict = environ.get(STRICT_ENV, "").lower() in ("1", "true", "yes")
    if path is None:
        raw: dict[str, Any] = {
            "version": "0.1",
            "storage": {"filesystem": {"rootdirectory": str(default_data_dir())},
                        "delete": {"enabled": True}},
            "http": {"addr": ":5000"},
        }
        source = "defaults"
    else:
        raw = _read_yaml(Path(path))
        source = str(path)
    env_paths = apply_environment(raw, environ)
    report = check_keys(raw, env_paths)
    unknown = tuple(key.message() for key in report.unknown)
    _refuse(report, strict)
    try:
        config = _build(raw, source)
    except ConfigError as error:
        raise ConfigError(str(error), unknown) from None
    return dataclasses.replace(config, unknown_keys=unknown,
                               ignored_keys=tuple(report.ignored))


def _refuse(report: KeyReport, strict: bool) -> None:
    """Settings that cannot be honoured stop the start: always for security sections and
    refused keys, for every unknown key when strict."""
    if report.refused:
        raise ConfigError(report.refused[0])
    fatal = [key for key in report.unknown if strict or key.security]
    if fatal:
        messages = [key.message().replace("; it has no effect", "") for key in fatal]
        why = ("unknown keys are errors with --strict-config or DOCKYARD_STRICT_CONFIG=1"
               if strict and not fatal[0].security else
               "unknown keys in a security section are errors")
        raise ConfigError(f"{'; '.join(messages)} ({why})")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path} must be a YAML mapping")
    return document


def apply_environment(raw: dict[str, Any], environ: Mapping[str, str]
                      ) -> dict[tuple[str, ...], str]:
    """REGISTRY_A_B_C=value sets a.b.c, matching existing keys case-insensitively. Returns
    the key path each variable set, so warnings can name the variable."""
    env_paths: dict[tuple[str, ...], str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
            continue
        parts = name[len(ENV_PREFIX):].lower().split("_")
        value = _environment_value(environ[name])
        if parts == ["storage"] and isinstance(value, str):
            # REGISTRY_STORAGE=<driver> picks the driver, keeping the other storage keys.
            storage = raw.setdefault("storage", {})
            if isinstance(storage, dict):
                for driver in _DRIVERS:
                    if driver != value:
                        storage.pop(driver, None)
                storage.setdefault(value, {})
                env_paths[("storage", value)] = name
            continue
        node: dict[str, Any] = raw
        path: list[str] = []
        for part in parts[:-1]:
            key = _find_key(node, part)
            path.append(key)
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        last = _find_key(node, parts[-1])
        node[last] = value
        env_paths[(*path, last)] = name
    return env_paths


def _environment_value(text: str) -> Any:
    """A variable's value: YAML for a mapping or a list, else the text as written, which the
    key's reader converts (as distribution decodes a variable into its key's type, so a
    realm or secret "0123" is not the number 83)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, dict | list) or value is None:
        return value
    return text


def _find_key(node: dict[str, Any], lowered: str) -> str:
    for key in node:
        if str(key).lower() == lowered:
            return str(key)
    return lowered


_DRIVERS = ("filesystem", "inmemory", "s3", "azure", "gcs", "swift", "oss")
_STORAGE_SECTIONS = ("delete", "maintenance", "cache", "redirect", "tag", "gc", "index")


def _section(raw: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}{key}: expected a mapping, got {value!r}")
    return value


def _bool(section: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = section.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in YAML_BOOLEANS:
        return YAML_BOOLEANS[value.strip().lower()]
    raise ConfigError(f"{where}{key}: expected true or false, got {value!r}")


def _int(section: Mapping[str, Any], key: str, where: str, default: int) -> int:
    value = section.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and WHOLE_NUMBER.fullmatch(value.strip()):
        return int(value)
    raise ConfigError(f"{where}{key}: expected a whole number, got {value!r}")


def _str(section: Mapping[str, Any], key: str, where: str, default: str) -> str:
    value = section.get(key, default)
    if value is None:
        return default
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{where}{key}: expected a string, got {value!r}")


def parse_duration(value: Any, key: str) -> float:
    """Go duration strings ("168h", "10s", "1h30m") or plain seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        # distribution reads bare numbers as nanoseconds.
        return float(value) / 1e9
    if isinstance(value, str):
        text = value.strip()
        if WHOLE_NUMBER.fullmatch(text):  # a bare number, as from a variable: nanoseconds
            return float(text) / 1e9
        parts = DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            seconds = sum(float(n) * DURATION_UNITS[u] for n, u in parts)
            if math.isfinite(seconds):  # hundreds of digits overflow to inf
                return seconds
    raise ConfigError(f"{key}: expected a duration like 10s, 5m or 168h, got {value!r}")


def parse_addr(addr: str, key: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` as (host, port); an empty host means every
    interface, IPv6 and IPv4 alike, as in distribution."""
    host, sep, port_text = addr.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{key}: expected host:port or :port, got {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not host:
            raise ConfigError(f"{key}: empty brackets in {addr!r}")
    elif "[" in host or "]" in host or ":" in host:
        raise ConfigError(f"{key}: write an IPv6 address in brackets, like [::1]:5000, "
                          f"got {addr!r}")
    return host, int(port_text)


def _build(raw: dict[str, Any], source: str) -> Config:
    version = raw.get("version", "0.1")
    if str(version) not in ("0.1", "0.10"):
        raise ConfigError(f"version: only version 0.1 is supported, got {version!r}")
    htpasswd, token, token_issuer = _auth(raw)
    return Config(
        database=_database(raw),
        htpasswd=htpasswd,
        token=token,
        token_issuer=token_issuer,
        login_throttle=_login_throttle(_section(raw, "auth", "")),
        proxy=_proxy(raw),
        notifications=_notifications(raw),
        retention=_retention(raw),
        storage=_storage(raw),
        http=_http(raw),
        log=_log(raw),
        health=_health(raw),
        ui=_ui(raw, default_on=source == "defaults"),
        max_manifest_size=_int(
            _section(_section(raw, "validation", ""), "manifests", "validation."),
            "maxsize", "validation.manifests.", 4 * 1024 * 1024),
        max_uploads_per_repository=_int(
            _section(_section(raw, "validation", ""), "uploads", "validation."),
            "maxinprogress", "validation.uploads.", 1000),
        source=source,
    )


def _proxy(raw: dict[str, Any]) -> ProxyConfig | None:
    try:
        return proxy_config(_section(raw, "proxy", ""), parse_duration)
    except ProxyConfigError as error:
        raise ConfigError(str(error)) from None


def _notifications(raw: dict[str, Any]) -> NotificationsConfig:
    try:
        return notifications_config(_section(raw, "notifications", ""), parse_duration, _bool)
    except NotificationsConfigError as error:
        raise ConfigError(str(error)) from None


def _retention(raw: dict[str, Any]) -> RetentionConfig:
    try:
        return retention_config(_section(raw, "retention", ""), parse_duration)
    except RetentionConfigError as error:
        raise ConfigError(str(error)) from None


def _database(raw: dict[str, Any]) -> DatabaseConfig:
    section = raw.get("database")
    if section is not None and not isinstance(section, dict):
        # Not shown: it may be a connection string with its password.
        raise ConfigError("database: expected a mapping of keys (host, dbname, ... or dsn), "
                          f"got a {type(section).__name__}")
    try:
        return database_config(section or {}, _bool, _int, _str, parse_duration)
    except DatabaseConfigError as error:
        raise ConfigError(str(error)) from None


AUTH_METHODS = ("htpasswd", "token")
ISSUER_KEYS = ("key", "htpasswd", "expiration", "rules", "groups")
RULE_KEYS = ("user", "group", "repository", "registry", "actions")


def _auth(raw: dict[str, Any]
          ) -> tuple[HtpasswdConfig | None, TokenConfig | None, IssuerConfig | None]:
    auth = _section(raw, "auth", "")
    others = sorted(set(auth) - {*AUTH_METHODS, "issuer", "throttle"})
    if others:
        raise ConfigError(f"auth.{others[0]}: unsupported authentication method "
                          "(supported: htpasswd, token)")
    if "htpasswd" in auth and "token" in auth:
        # As in distribution, one method guards the registry.
        raise ConfigError("auth: configure either auth.htpasswd or auth.token, not both "
                          "(dockyard's token issuer takes its users from "
                          "auth.issuer.htpasswd)")
    if "issuer" in auth and "token" not in auth:
        raise ConfigError("auth.issuer: requires auth.token (the issuer's tokens are "
                          "checked as auth.token says)")
    htpasswd = _htpasswd(auth) if "htpasswd" in auth else None
    token = _token(auth, "issuer" in auth) if "token" in auth else None
    issuer = _issuer(auth, token) if token is not None and "issuer" in auth else None
    return htpasswd, token, issuer


THROTTLE_KEYS = ("enabled", "peraccount", "perclient", "window")


def _login_throttle(auth: dict[str, Any]) -> LoginThrottleConfig:
    section = _section(auth, "throttle", "auth.")
    where = "auth.throttle."
    unknown = sorted(set(section) - set(THROTTLE_KEYS))
    if unknown:
        raise ConfigError(f"{where}{unknown[0]}: unknown key (known: {', '.join(THROTTLE_KEYS)})")
    defaults = LoginThrottleConfig()
    per_account = _int(section, "peraccount", where, defaults.per_account)
    per_client = _int(section, "perclient", where, defaults.per_client)
    for key, value in (("peraccount", per_account), ("perclient", per_client)):
        if value < 1:
            raise ConfigError(f"{where}{key}: must be at least 1 (to switch the throttle off: "
                              f"{where}enabled: false)")
    window = parse_duration(section.get("window", "1m"), where + "window")
    if window <= 0:
        raise ConfigError(f"{where}window: must be longer than zero")
    return LoginThrottleConfig(_bool(section, "enabled", where, defaults.enabled),
                               per_account, per_client, window)


def _htpasswd(auth: dict[str, Any]) -> HtpasswdConfig:
    section = _section(auth, "htpasswd", "auth.")
    path = _str(section, "path", "auth.htpasswd.", "")
    if not path:
        raise ConfigError("auth.htpasswd.path: required (an htpasswd file of bcrypt entries, "
                          "made with `htpasswd -B` or `dockyard passwd`)")
    if not os.path.isfile(path):
        raise ConfigError(f"auth.htpasswd.path: file not found: {path} "
                          "(create it with `dockyard passwd FILE USER`)")
    realm = _str(section, "realm", "auth.htpasswd.", "Registry Realm")
    return HtpasswdConfig(realm, path)


def _token(auth: dict[str, Any], with_issuer: bool) -> TokenConfig:
    section = _section(auth, "token", "auth.")
    from dockyard.auth import keys  # cryptography and PyJWT: only when tokens are configured

    where = "auth.token."
    values = {}
    for key in ("realm", "service", "issuer"):
        values[key] = _str(section, key, where, "").strip()
        if not values[key]:
            raise ConfigError(f"{where}{key}: required")
    if not re.match(r"https?://[^/]+", values["realm"]):
        raise ConfigError(f"{where}realm: expected the URL of the token server, like "
                          f"https://registry.example.com/auth/token, got {values['realm']!r}")
    bundle = _str(section, "rootcertbundle", where, "").strip()
    jwks = _str(section, "jwks", where, "").strip()
    if not bundle and not jwks and not with_issuer:
        raise ConfigError(f"{where}rootcertbundle: required (PEM certificates whose keys "
                          "sign the tokens; or auth.token.jwks)")
    for key, path, load in (("rootcertbundle", bundle, keys.load_certificate_bundle),
                            ("jwks", jwks, keys.load_jwks)):
        if path:
            if not os.path.isfile(path):
                raise ConfigError(f"{where}{key}: file not found: {path}")
            try:
                load(path)
            except keys.KeyFileError as error:
                raise ConfigError(f"{where}{key}: {error}") from None
    algorithms = section.get("signingalgorithms") or []
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise ConfigError(f"{where}signingalgorithms: expected a list like [RS256, ES256]")
    supported = (*keys.RSA_ALGORITHMS, *keys.EC_ALGORITHMS.values())
    for algorithm in algorithms:
        if algorithm not in supported:
            raise ConfigError(f"{where}signingalgorithms: unsupported algorithm "
                              f"{algorithm!r} (supported: {', '.join(supported)})")
    return TokenConfig(values["realm"], values["service"], values["issuer"], bundle, jwks,
                       tuple(algorithms))


def _issuer(auth: dict[str, Any], token: TokenConfig) -> IssuerConfig:
    from dockyard.auth import keys

    section = _section(auth, "issuer", "auth.")
    where = "auth.issuer."
    unknown = sorted(set(section) - set(ISSUER_KEYS))
    if unknown:
        raise ConfigError(f"{where}{unknown[0]}: unknown key "
                          f"(known: {', '.join(ISSUER_KEYS)})")
    key_path = _str(section, "key", where, "").strip()
    if not key_path:
        raise ConfigError(f"{where}key: required (the PEM private key that signs tokens)")
    if not os.path.isfile(key_path):
        raise ConfigError(f"{where}key: file not found: {key_path}")
    try:
        private_key = keys.load_private_key(key_path)
        trusted = keys.load_trusted_keys(token.rootcertbundle, token.jwks, private_key)
    except keys.KeyFileError as error:
        raise ConfigError(f"{where}key: {error}") from None
    if not keys.trusts(trusted, private_key):
        raise ConfigError(f"{where}key: its public key is in neither auth.token.rootcertbundle "
                          "nor auth.token.jwks, so the tokens it signs would be refused")
    algorithm = keys.signing_algorithm(private_key)
    if token.signing_algorithms and algorithm not in token.signing_algorithms:
        raise ConfigError(f"{where}key: signs with {algorithm}, which "
                          "auth.token.signingalgorithms does not accept")
    htpasswd = _str(section, "htpasswd", where, "").strip()
    if htpasswd and not os.path.isfile(htpasswd):
        raise ConfigError(f"{where}htpasswd: file not found: {htpasswd} "
                          "(create it with `dockyard passwd FILE USER`)")
    expiration = parse_duration(section.get("expiration", "5m"), where + "expiration")
    if expiration < 1:
        raise ConfigError(f"{where}expiration: must be at least 1s")
    groups_raw = _section(section, "groups", where)
    groups: dict[str, tuple[str, ...]] = {}
    for name, members in groups_raw.items():
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError(f"{where}groups.{name}: expected a list of user names")
        groups[str(name)] = tuple(members)
    rules_raw = section.get("rules") or []
    if not isinstance(rules_raw, list):
        raise ConfigError(f"{where}rules: expected a list of rules")
    rules = [_rule(rule, f"{where}rules[{number}]", groups)
             for number, rule in enumerate(rules_raw)]
    return IssuerConfig(key_path, htpasswd, expiration, tuple(rules), groups)


def _rule(raw: Any, where: str, groups: dict[str, tuple[str, ...]]) -> AccessRule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping like "
                          "{user: alice, repository: '*', actions: [pull, push]}")
    unknown = sorted(set(raw) - set(RULE_KEYS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(RULE_KEYS)})")
    user = _str(raw, "user", where + ".", "").strip() or None
    group = _str(raw, "group", where + ".", "").strip() or None
    if (user is None) == (group is None):
        raise ConfigError(f"{where}: give exactly one of user and group")
    if group is not None and group not in groups:
        raise ConfigError(f"{where}.group: no group {group!r} in auth.issuer.groups")
    repository = _str(raw, "repository", where + ".", "").strip()
    registry = _str(raw, "registry", where + ".", "").strip() or None
    if registry is not None:
        if repository:
            raise ConfigError(f"{where}: give one of repository and registry, not both")
        if registry not in REGISTRY_RESOURCES:
            raise ConfigError(f"{where}.registry: unknown resource {registry!r} "
                              f"(known: {', '.join(REGISTRY_RESOURCES)})")
    elif not repository:
        raise ConfigError(f"{where}.repository: required (a name or pattern like team/*, "
                          "or registry: admin for the admin API)")
    known = REGISTRY_ACTIONS if registry is not None else ACTIONS
    actions = raw.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise ConfigError(f"{where}.actions: expected a list of actions ({', '.join(known)})")
    for action in actions:
        if action not in known:
            raise ConfigError(f"{where}.actions: unknown action {action!r} "
                              f"(known: {', '.join(known)})")
    return AccessRule(repository, tuple(actions), user=user, group=group, registry=registry)


# Each worker is an event loop serving thousands of connections and costs its own idle
# memory; past a few, more only help hashing many pushes at once.
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


def _storage(raw: dict[str, Any]) -> StorageConfig:
    storage = _section(raw, "storage", "")
    drivers = [key for key in storage if key not in _STORAGE_SECTIONS]
    if not drivers:
        raise ConfigError("storage: no storage driver configured (for example storage.filesystem)")
    if len(drivers) > 1:
        raise ConfigError(f"storage: only one driver may be configured, got {sorted(drivers)}")
    driver = drivers[0]
    if driver not in ("filesystem", "inmemory", "s3"):
        raise ConfigError(f"storage.{driver}: unsupported storage driver "
                          "(supported: filesystem, inmemory, s3)")
    params = storage.get(driver) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"storage.{driver}: expected a mapping, got {params!r}")
    s3 = None
    if driver == "s3":
        try:
            s3 = s3_settings(params, _bool, _int, _str)
        except S3ConfigError as error:
            raise ConfigError(str(error)) from None
        # The store is the bucket; the index and the lock file need a local directory.
        root = _str(params, "indexdirectory", "storage.s3.", "/var/lib/registry")
        if not root:
            raise ConfigError("storage.s3.indexdirectory: must not be empty")
    else:
        root = _str(params, "rootdirectory", f"storage.{driver}.", "/var/lib/registry")
    if driver == "filesystem" and not root:
        raise ConfigError("storage.filesystem.rootdirectory: must not be empty")
    delete = _section(storage, "delete", "storage.")
    maintenance = _section(storage, "maintenance", "storage.")
    readonly = _section(maintenance, "readonly", "storage.maintenance.")
    redirect = _section(storage, "redirect", "storage.")
    purging_raw = maintenance.get("uploadpurging")
    purging = UploadPurging()
    if purging_raw is not None:
        if not isinstance(purging_raw, dict):
            raise ConfigError("storage.maintenance.uploadpurging: expected a mapping")
        where = "storage.maintenance.uploadpurging."
        purging = UploadPurging(
            enabled=_bool(purging_raw, "enabled", where, True),
            age=parse_duration(purging_raw.get("age", "168h"), where + "age"),
            interval=parse_duration(purging_raw.get("interval", "24h"), where + "interval"),
            dry_run=_bool(purging_raw, "dryrun", where, False),
        )
    gc_raw = _section(storage, "gc", "storage.")
    where = "storage.gc."
    gc = GCSchedule(
        enabled=_bool(gc_raw, "enabled", where, False),
        interval=parse_duration(gc_raw.get("interval", "24h"), where + "interval"),
        grace_period=parse_duration(gc_raw.get("graceperiod", "1h"), where + "graceperiod"),
        delete_untagged=_bool(gc_raw, "deleteuntagged", where, False),
        dry_run=_bool(gc_raw, "dryrun", where, False),
        full_pass_interval=parse_duration(gc_raw.get("fullpassinterval", "168h"),
                                          where + "fullpassinterval"),
    )
    if gc.interval <= 0:
        raise ConfigError("storage.gc.interval: must be longer than zero")
    index_raw = _section(storage, "index", "storage.")
    resync = parse_duration(index_raw.get("resyncinterval", "10m"),
                            "storage.index.resyncinterval")
    return StorageConfig(
        sole_writer=_bool(index_raw, "solewriter", "storage.index.", False),
        gc=gc,
        index_resync_interval=resync,
        driver=driver,
        root_directory=root,
        s3=s3,
        delete_enabled=_bool(delete, "enabled", "storage.delete.", False),
        read_only=_bool(readonly, "enabled", "storage.maintenance.readonly.", False),
        redirect_disabled=_bool(redirect, "disable", "storage.redirect.", False),
        upload_purging=purging,
    )


def _http(raw: dict[str, Any]) -> HTTPConfig:
    http = _section(raw, "http", "")
    host, port = parse_addr(_str(http, "addr", "http.", ":5000"), "http.addr")
    net = _str(http, "net", "http.", "tcp")
    if net != "tcp":
        raise ConfigError(f"http.net: only tcp is supported, got {net!r}")
    prefix = _str(http, "prefix", "http.", "").strip()
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    base_url = _str(http, "host", "http.", "").rstrip("/")
    if base_url and not re.match(r"https?://[^/]+", base_url):
        raise ConfigError(f"http.host: expected a URL like https://registry.example.com, "
                          f"got {base_url!r}")
    headers: dict[str, list[str]] = {"X-Content-Type-Options": ["nosniff"]}
    for name, value in _section(http, "headers", "http.").items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str | int | float) for item in values):
            raise ConfigError(f"http.headers.{name}: expected a string or list of strings")
        headers[str(name)] = [str(item) for item in values]
    tls_raw = _section(http, "tls", "http.")
    tls = None
    if not tls_raw.get("certificate") and not tls_raw.get("key"):
        # distribution serves plain HTTP here, whatever else the section asks for; the
        # operator plainly wants TLS, so refuse rather than serve it unencrypted.
        for name in ("letsencrypt", "clientcas", "minimumtls"):
            if _has_value(tls_raw.get(name)):
                reason = ("Let's Encrypt is not supported; give http.tls.certificate and "
                          "http.tls.key (or terminate TLS in a proxy)"
                          if name == "letsencrypt" else
                          "requires http.tls.certificate and http.tls.key")
                raise ConfigError(f"http.tls.{name}: {reason}; dockyard will not serve "
                                  "plain HTTP in place of the TLS configured here")
    else:
        certificate = _str(tls_raw, "certificate", "http.tls.", "")
        key = _str(tls_raw, "key", "http.tls.", "")
        for name, value in (("certificate", certificate), ("key", key)):
            if not value:
                raise ConfigError(f"http.tls.{name}: required when TLS is configured")
            if not os.path.isfile(value):
                raise ConfigError(f"http.tls.{name}: file not found: {value}")
        cas = tls_raw.get("clientcas") or []
        if not isinstance(cas, list):
            raise ConfigError("http.tls.clientcas: expected a list of files")
        minimum = _str(tls_raw, "minimumtls", "http.tls.", "tls1.2")
        if minimum not in ("tls1.2", "tls1.3"):
            raise ConfigError(f"http.tls.minimumtls: expected tls1.2 or tls1.3, got {minimum!r}")
        tls = TLSConfig(certificate, key, tuple(str(ca) for ca in cas), minimum)
    # One worker per core by default: uploads keep their state in storage, so any worker
    # can take any request.
    workers = _int(http, "workers", "http.", default_workers())
    if workers < 1:
        raise ConfigError(f"http.workers: must be at least 1, got {workers}")
    # distribution's default (0) drops requests in flight at SIGTERM; an upload cut off by
    # a restart has to start over, so dockyard lets them finish for a while by default.
    drain_timeout = parse_duration(http.get("draintimeout", "30s"), "http.draintimeout")
    return HTTPConfig(
        timeouts=_timeouts(_section(http, "timeouts", "http.")),
        host=host,
        port=port,
        prefix=prefix,
        base_url=base_url,
        relative_urls=_bool(http, "relativeurls", "http.", False),
        headers=headers,
        tls=tls,
        admin=_bool(_section(http, "admin", "http."), "enabled", "http.admin.", False),
        workers=workers,
        drain_timeout=drain_timeout,
        trusted_proxies=_trusted_proxies(http.get("trustedproxies")),
        debug=_debug_server(_section(http, "debug", "http.")),
    )


def _debug_server(debug: dict[str, Any]) -> DebugServerConfig | None:
    """http.debug: distribution's debug server; dockyard serves its metrics there."""
    addr = _str(debug, "addr", "http.debug.", "")
    if not addr:
        return None
    host, port = parse_addr(addr, "http.debug.addr")
    prometheus = _section(debug, "prometheus", "http.debug.")
    path = None
    if _bool(prometheus, "enabled", "http.debug.prometheus.", False):
        path = _str(prometheus, "path", "http.debug.prometheus.", "/metrics") or "/metrics"
        if not path.startswith("/"):
            raise ConfigError(f"http.debug.prometheus.path: must start with /, got {path!r}")
    return DebugServerConfig(host, port, path)


def _trusted_proxies(value: Any) -> tuple[str, ...]:
    """http.trustedproxies: a list of addresses or CIDR networks (a comma-separated string
    too, as an environment variable gives it)."""
    key = "http.trustedproxies"
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ConfigError(f"{key}: expected a list of addresses or networks like "
                          f"[127.0.0.1/32, 10.0.0.0/8], got {value!r}")
    networks = []
    for item in items:
        text = str(item).strip()
        try:
            networks.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise ConfigError(f"{key}: {text!r} is not an IP address or network like "
                              "10.0.0.0/8") from None
    return tuple(networks)


TIMEOUT_KEYS = ("head", "idle", "body")


def _timeouts(section: dict[str, Any]) -> HTTPTimeouts:
    where = "http.timeouts."
    unknown = sorted(set(section) - set(TIMEOUT_KEYS))
    if unknown:
        raise ConfigError(f"{where}{unknown[0]}: unknown key (known: {', '.join(TIMEOUT_KEYS)})")
    defaults = HTTPTimeouts()
    values = {}
    for key in TIMEOUT_KEYS:
        raw = section.get(key)
        values[key] = getattr(defaults, key) if raw is None else parse_duration(raw, where + key)
        if values[key] <= 0:
            raise ConfigError(f"{where}{key}: must be longer than zero")
    return HTTPTimeouts(**values)


def _has_value(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_value(item) for item in value.values())
    return value not in (None, "", [], False)


def _log(raw: dict[str, Any]) -> LogConfig:
    log = _section(raw, "log", "")
    # `loglevel` at the top is distribution's older spelling, used when log.level is not set.
    level = _str(log, "level", "log.", _str(raw, "loglevel", "", "info")).lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"log.level: expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    formatter = _str(log, "formatter", "log.", "text").lower()
    if formatter not in LOG_FORMATTERS:
        raise ConfigError(f"log.formatter: expected text, json or logstash, got {formatter!r}")
    fields = _section(log, "fields", "log.")
    access = _section(log, "accesslog", "log.")
    return LogConfig(
        level=level,
        formatter=formatter,
        fields={str(k): str(v) for k, v in fields.items()},
        access_log=not _bool(access, "disabled", "log.accesslog.", False),
    )


def _ui(raw: dict[str, Any], default_on: bool) -> UIConfig:
    section = _section(raw, "ui", "")
    path = "/" + _str(section, "path", "ui.", "/ui").strip().strip("/")
    if path == "/" or path.startswith(("/v2", "/debug", "/admin", "/auth")) \
            or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", path):
        raise ConfigError(f"ui.path: expected a path of its own such as /ui, got {path!r}")
    return UIConfig(enabled=_bool(section, "enabled", "ui.", default_on), path=path)


def _health(raw: dict[str, Any]) -> HealthConfig:
    storage = _section(_section(raw, "health", ""), "storagedriver", "health.")
    where = "health.storagedriver."
    return HealthConfig(
        storage_driver_enabled=_bool(storage, "enabled", where, False),
        interval=parse_duration(storage.get("interval", "10s"), where + "interval"),
        threshold=_int(storage, "threshold", where, 3),
    )
