"""Registries on the loopback interface may speak plain HTTP, as docker lets them.

docker counts 127.0.0.0/8 (and ::1) as insecure registries out of the box: it tries HTTPS
first and falls back to plain HTTP, so `docker push localhost:5000/app` works against a
`registry:2` started without TLS. Traffic that never leaves the machine cannot be read or
changed on a network, so the fallback gives nothing away that HTTPS would protect.

Two deliberate differences from docker:

- only addresses that are loopback as written count (``localhost``, names under
  ``.localhost``, 127.0.0.0/8, ``::1``); docker resolves other names and checks the
  addresses, but a name resolved twice (once to decide, once to connect) may answer
  differently the second time, and the plain HTTP request, credentials included, would
  then go out to the network;
- the HTTPS attempt checks the certificate as usual (docker skips the check for insecure
  registries): a loopback registry that speaks TLS with a certificate we cannot verify is
  reported, with the hint to pass ``--ca-cert`` or ``--insecure``, rather than silently used.
"""

from __future__ import annotations

import ipaddress
import ssl

import httpx

from dockyard.client.reference import Registry


def hostname(host: str) -> str:
    """The host part of ``host[:port]`` (brackets of an IPv6 literal removed)."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    name = hostname(host).lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _certificate_rejected(error: BaseException) -> bool:
    """Whether the TLS handshake failed on the certificate (the server does speak TLS)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def choose_scheme(registry: Registry, verify: bool | ssl.SSLContext, timeout: float
                  ) -> Registry:
    """`registry` as given, or over plain HTTP when it is on loopback, no scheme was
    asked for, and it does not answer HTTPS."""
    if registry.explicit_scheme or registry.scheme != "https" or not is_loopback(registry.host):
        return registry
    try:
        # No credentials on this probe: any HTTP answer (401 included) means HTTPS works.
        httpx.get(f"{registry.url}/v2/", verify=verify, timeout=timeout,
                  follow_redirects=False, headers={"User-Agent": "dockyard-client"})
    except httpx.TransportError as error:
        if isinstance(error, httpx.TimeoutException) or _certificate_rejected(error):
            return registry  # the real request reports it, with its hints
        return Registry(registry.host, "http", False)
    return registry
