"""The client's address: the socket's peer, or, when the peer is a trusted proxy
(http.trustedproxies), the address it reports in X-Forwarded-For (else Forwarded).

Proxies append the address they received a request from, so the list is read from the
right: each trusted hop vouches for the one before it, and the rightmost address that is
not a trusted proxy is the client. Whatever a client wrote into the header itself lies to
the left of that and is never taken."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPV4_MAPPED = "::ffff:"


def peer_address(scope: Mapping[str, Any]) -> str:
    """The socket peer's address; an IPv4 client of a dual-stack socket as plain IPv4
    (`::ffff:192.0.2.1` is 192.0.2.1), so it is logged and throttled as one client."""
    peer = scope.get("client")
    if not peer:
        return "unknown"
    address: str = peer[0]
    if address.startswith(IPV4_MAPPED) and "." in address:
        return address[len(IPV4_MAPPED):]
    return address


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: bare, `v4:port`, `[v6]` or `[v6]:port`, maybe
    quoted; None for anything else (`unknown`, obfuscated names, garbage)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_hops(headers: Mapping[str, str]) -> list[str]:
    """The addresses a request passed through, leftmost first: X-Forwarded-For, or the
    `for=` of each Forwarded element (an element without one is an unknown hop, "")."""
    chain = headers.get("x-forwarded-for")
    if chain is not None:
        return chain.split(",")
    forwarded = headers.get("forwarded")
    if forwarded is None:
        return []
    hops = []
    for element in forwarded.split(","):
        hop = ""
        for pair in element.split(";"):
            key, _, value = pair.partition("=")
            if key.strip().lower() == "for":
                hop = value
        hops.append(hop)
    return hops


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(network) for network in networks)
        # Peers repeat (the proxies themselves): their verdict is remembered.
        self._peer_trusted = lru_cache(maxsize=4096)(self._trusted_text)

    def trusts(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def _trusted_text(self, peer: str) -> bool:
        address = parse_address(peer)
        return address is not None and self.trusts(address)

    def client(self, peer: str, headers: Mapping[str, str]) -> str:
        """The client's address, for the login throttle and the access log."""
        if not self.networks or not self._peer_trusted(peer):
            return peer
        client = peer
        for hop in reversed(forwarded_hops(headers)):
            address = parse_address(hop)
            if address is None:
                break  # a hop no trusted proxy could name: the nearest known one stands
            client = str(address)
            if not self.trusts(address):
                break
        return client
