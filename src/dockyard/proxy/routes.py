"""Which upstream a repository name belongs to, and its name there."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dockyard.config.model import ProxyConfig, UpstreamConfig
from dockyard.proxy.upstream import Upstream


def upstream_of(name: str, upstreams: Iterable[UpstreamConfig]
                ) -> tuple[UpstreamConfig, str] | None:
    """The upstream whose prefix is the longest to start `name`, with the name there;
    None for a repository of this registry's own."""
    best: tuple[UpstreamConfig, str] | None = None
    for config in upstreams:
        if config.prefix and not name.startswith(config.prefix + "/"):
            continue
        if best is None or len(config.prefix) > len(best[0].prefix):
            best = (config, name[len(config.prefix) + 1:] if config.prefix else name)
    return best


@dataclass(frozen=True, slots=True)
class Route:
    config: UpstreamConfig
    upstream: Upstream
    remote_name: str  # the repository's name at the upstream (the prefix taken off)


class Routes:
    """The configured upstreams, each with one client (and so one token cache)."""

    def __init__(self, config: ProxyConfig) -> None:
        self._upstreams = {
            upstream.prefix: (upstream, Upstream(upstream.remoteurl, upstream.username,
                                                 upstream.password, timeout=config.timeout))
            for upstream in config.upstreams}

    @property
    def caches_everything(self) -> bool:
        """Whether every name is an upstream's (distribution's proxy mode: no pushes)."""
        return "" in self._upstreams

    def find(self, name: str) -> Route | None:
        found = upstream_of(name, self.configs())
        if found is None:
            return None
        config, remote_name = found
        return Route(config, self._upstreams[config.prefix][1], remote_name)

    def configs(self) -> list[UpstreamConfig]:
        return [config for config, _ in self._upstreams.values()]

    async def aclose(self) -> None:
        for _, upstream in self._upstreams.values():
            await upstream.aclose()
