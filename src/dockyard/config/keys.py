"""Every key distribution 2.8 reads from config.yml, plus dockyard's own, and what dockyard
does with each: uses it, accepts it without effect, or refuses it. Keys not in this table
are typos (or from some other program) and are reported with the closest known key."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Use(Enum):
    USED = "used"          # dockyard implements it
    IGNORED = "ignored"    # accepted so an existing file works; has no effect
    REFUSED = "refused"    # a non-empty value is a configuration error (see `reason`)


@dataclass(frozen=True)
class Key:
    """A key; `children` lists the keys a mapping under it may hold (None: any, unchecked)."""

    use: Use = Use.USED
    children: Mapping[str, Key] | None = None
    reason: str = ""
    # Inside a security section, a key nobody knows is an error: a misspelled restriction
    # would otherwise be silently dropped.
    strict: bool = False


def used(**children: Key) -> Key:
    return Key(Use.USED, children)


def ignored(**children: Key) -> Key:
    return Key(Use.IGNORED, children or None)


def refused(reason: str) -> Key:
    return Key(Use.REFUSED, reason=reason)


LEAF = Key()
IGNORED = Key(Use.IGNORED)
ANY_MAPPING = Key(Use.USED, None)  # free-form names: headers, log fields, issuer groups

FOREIGN_LAYER_URLS = ("dockyard does not check layer URLs in manifests; refusing to start "
                      "is safer than accepting manifests this list is meant to refuse")

SCHEMA = used(
    version=LEAF,
    loglevel=LEAF,  # distribution's old spelling of log.level
    log=used(
        accesslog=used(disabled=LEAF),
        level=LEAF,
        formatter=LEAF,
        fields=ANY_MAPPING,
        hooks=IGNORED,
        reportcaller=IGNORED,
    ),
    storage=used(
        filesystem=used(rootdirectory=LEAF, maxthreads=IGNORED),
        inmemory=ANY_MAPPING,
        # Unknown keys are errors: a misspelled `encrypt` would silently store in clear.
        s3=Key(Use.USED, {
            **{name: LEAF for name in (
                "accesskey", "secretkey", "region", "regionendpoint", "forcepathstyle",
                "bucket", "rootdirectory", "secure", "skipverify", "v4auth", "chunksize",
                "multipartcopychunksize", "multipartcopymaxconcurrency",
                "multipartcopythresholdsize", "storageclass", "encrypt", "keyid",
                "objectacl", "useragent", "loglevel", "usedualstack", "accelerate",
                "usefipsendpoint", "sessiontoken", "redirectendpoint",
                "indexdirectory")},  # dockyard only: the local index and locks
        }, strict=True),
        # Other drivers are known, and refused by the loader with a list of supported ones.
        azure=ANY_MAPPING, gcs=ANY_MAPPING, swift=ANY_MAPPING, oss=ANY_MAPPING,
        delete=used(enabled=LEAF),
        maintenance=used(
            uploadpurging=used(enabled=LEAF, age=LEAF, interval=LEAF, dryrun=LEAF),
            readonly=used(enabled=LEAF),
        ),
        cache=ignored(blobdescriptor=IGNORED, blobdescriptorsize=IGNORED),
        redirect=used(disable=LEAF),
        tag=ignored(concurrencylimit=IGNORED),
        gc=used(enabled=LEAF, interval=LEAF, graceperiod=LEAF, deleteuntagged=LEAF,
                dryrun=LEAF, fullpassinterval=LEAF),  # dockyard only
        index=used(resyncinterval=LEAF, solewriter=LEAF),  # dockyard only
    ),
    auth=used(
        htpasswd=Key(Use.USED, {"realm": LEAF, "path": LEAF}, strict=True),
        token=Key(Use.USED, {"realm": LEAF, "service": LEAF, "issuer": LEAF,
                             "rootcertbundle": LEAF, "jwks": LEAF,
                             "signingalgorithms": LEAF, "autoredirect": IGNORED},
                  strict=True),
        # The loader checks the issuer's keys and refuses other methods (silly, ...).
        issuer=ANY_MAPPING,
        # dockyard only: failed-login limits.
        throttle=Key(Use.USED, {"enabled": LEAF, "peraccount": LEAF, "perclient": LEAF,
                                "window": LEAF}, strict=True),
    ),
    # GitLab's registry: the metadata index in PostgreSQL. Unknown keys are errors: a
    # misspelled sslmode would silently connect without TLS.
    database=Key(Use.USED, {
        **{name: LEAF for name in (
            "enabled", "host", "port", "user", "password", "dbname", "sslmode", "sslcert",
            "sslkey", "sslrootcert", "connecttimeout",
            "dsn")},  # dockyard only: a libpq connection string under the keys
        "pool": Key(Use.USED, {name: LEAF for name in (
            "maxopen", "maxidle", "maxlifetime", "maxidletime")}, strict=True),
        # GitLab's, for what dockyard does not do (load balancing over replicas, ...).
        **{name: IGNORED for name in (
            "draintimeout", "preparedstatements", "primary", "loadbalancing",
            "backgroundmigrations")},
    }, strict=True),
    middleware=ignored(registry=IGNORED, repository=IGNORED, storage=IGNORED),
    reporting=ignored(bugsnag=IGNORED, newrelic=IGNORED),
    http=used(
        addr=LEAF,
        net=LEAF,
        host=LEAF,
        prefix=LEAF,
        secret=IGNORED,  # dockyard keeps no upload state in URLs to sign
        relativeurls=LEAF,
        draintimeout=LEAF,
        tls=Key(Use.USED, {
            "certificate": LEAF,
            "key": LEAF,
            "clientcas": LEAF,
            "minimumtls": LEAF,
            "ciphersuites": refused(
                "choosing cipher suites is not supported; remove it to use OpenSSL's "
                "defaults for the minimum TLS version (forward-secret AEAD suites)"),
            # Used with a certificate only as distribution does (ignored); without one
            # the loader refuses it rather than serve plain HTTP.
            "letsencrypt": ignored(cachefile=IGNORED, email=IGNORED, hosts=IGNORED,
                                   directoryurl=IGNORED),
        }, strict=True),
        headers=ANY_MAPPING,
        debug=used(addr=LEAF, prometheus=used(enabled=LEAF, path=LEAF)),
        http2=used(disabled=LEAF),  # dockyard speaks HTTP/1.1 only
        h2c=ignored(enabled=IGNORED),
        # dockyard only:
        workers=LEAF,
        admin=used(enabled=LEAF),
        timeouts=used(head=LEAF, idle=LEAF, body=LEAF),
        trustedproxies=LEAF,
    ),
    # Each endpoint's keys are checked where they are read (config.notifications).
    notifications=used(events=used(includereferences=LEAF), endpoints=LEAF),
    redis=ignored(),  # many keys, differing between distribution versions; all unused
    health=used(
        storagedriver=used(enabled=LEAF, interval=LEAF, threshold=LEAF),
        file=IGNORED,
        http=IGNORED,
        tcp=IGNORED,
    ),
    catalog=ignored(maxentries=IGNORED),
    proxy=used(remoteurl=LEAF, username=LEAF, password=LEAF, ttl=LEAF,
               # dockyard only (each upstream's keys are checked where they are read):
               upstreams=LEAF, tagfreshness=LEAF, timeout=LEAF),
    ui=used(enabled=LEAF, path=LEAF),  # dockyard only: the web UI
    # dockyard only: tags removed by policy (rules are checked where they are read).
    retention=used(protect=LEAF, rules=LEAF),
    compatibility=ignored(schema1=ignored(signingkeyfile=IGNORED, enabled=IGNORED)),
    validation=used(
        enabled=IGNORED,
        disabled=IGNORED,
        manifests=used(
            urls=used(allow=refused(FOREIGN_LAYER_URLS), deny=refused(FOREIGN_LAYER_URLS)),
            indexes=IGNORED,
            maxsize=LEAF,  # dockyard only
        ),
        uploads=used(maxinprogress=LEAF),  # dockyard only
    ),
    policy=used(repository=used(classes=refused(
        "dockyard does not restrict repositories to classes of content"))),
)


@dataclass(frozen=True)
class Unknown:
    """A key the table does not have, and where it came from."""

    path: str
    suggestion: str | None  # the closest known key, dotted
    env_name: str | None = None  # the REGISTRY_* variable that set it, if one did
    security: bool = False  # inside a section where unknown keys are errors

    def message(self) -> str:
        if self.env_name is not None:
            hint = (f" (did you mean {env_name_of(self.suggestion)}?)"
                    if self.suggestion else "")
            return f"{self.env_name} sets unknown key {self.path}{hint}; it has no effect"
        hint = f" (did you mean {self.suggestion}?)" if self.suggestion else ""
        return f"{self.path}: unknown key{hint}; it has no effect"


@dataclass
class KeyReport:
    unknown: list[Unknown] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "key: reason"


def env_name_of(path: str | None) -> str:
    return "REGISTRY_" + (path or "").replace(".", "_").upper()


def check_keys(raw: Mapping[str, Any], env_paths: Mapping[tuple[str, ...], str]) -> KeyReport:
    """Compare a config document with the table. `env_paths` maps the key paths that
    REGISTRY_* variables set to the variables' names."""
    report = KeyReport()
    _walk(raw, SCHEMA, (), env_paths, report)
    return report


def _walk(value: Any, key: Key, path: tuple[str, ...],
          env_paths: Mapping[tuple[str, ...], str], report: KeyReport) -> None:
    if key.children is None or not isinstance(value, Mapping):
        return
    for raw_name, child_value in value.items():
        name = str(raw_name)
        child_path = (*path, name)
        child = key.children.get(name)
        if child is None:
            report.unknown.append(Unknown(
                ".".join(child_path), _closest(name, path, key.children),
                _env_name(child_path, env_paths), key.strict))
        elif child.use is Use.REFUSED:
            if _is_set(child_value):
                report.refused.append(f"{'.'.join(child_path)}: {child.reason}")
        elif child.use is Use.IGNORED:
            if _is_set(child_value):
                report.ignored.append(".".join(child_path))
        else:
            _walk(child_value, child, child_path, env_paths, report)


def _is_set(value: Any) -> bool:
    """False for an empty value (a bare `letsencrypt:` or `{cachefile: ""}` asks nothing)."""
    if isinstance(value, Mapping):
        return any(_is_set(item) for item in value.values())
    if isinstance(value, list | tuple):
        return bool(value)
    return value not in (None, "", False)


def _env_name(path: tuple[str, ...], env_paths: Mapping[tuple[str, ...], str]) -> str | None:
    for env_path, name in env_paths.items():
        if env_path[:len(path)] == path:
            return name
    return None


def _closest(name: str, parent: tuple[str, ...], siblings: Mapping[str, Key]) -> str | None:
    """The sibling spelled most like `name`, else a key of that exact name elsewhere (a
    key put in the wrong section)."""
    close = difflib.get_close_matches(name.lower(), list(siblings), n=1, cutoff=0.6)
    if close:
        return ".".join((*parent, close[0]))
    for known in _all_paths(SCHEMA, ()):
        if known[-1] == name.lower():
            return ".".join(known)
    return None


def _all_paths(key: Key, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for name, child in (key.children or {}).items():
        yield (*path, name)
        yield from _all_paths(child, (*path, name))
