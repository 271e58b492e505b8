"""A registry on loopback speaking plain HTTP is reached without --insecure, as docker does.

docker counts 127.0.0.0/8 (and ::1) as insecure registries by default; `dockyard ls
localhost:5000` should work against `registry:2` started the usual way. Everything else
stays HTTPS unless told otherwise.
"""

from __future__ import annotations

from typing import Any

from tests.support.oci import make_image, push_image
from tests.support.server import RunningRegistry, free_port


def test_plain_http_on_loopback_needs_no_flag(cli: Any, any_registry: RunningRegistry) -> None:
    image = make_image(layer_count=1, layer_size=64)
    with any_registry.client() as client:
        push_image(client, "app", "v1", image)
    port = any_registry.host.rsplit(":", 1)[1]
    for host in (any_registry.host, f"localhost:{port}"):
        listed = cli("ls", "--json", host)
        assert listed.code == 0, (host, listed.err)
        assert listed.json() == {"registry": host, "repositories": ["app"]}
        inspected = cli("inspect", "--json", f"{host}/app:v1")
        assert inspected.code == 0, (host, inspected.err)
        assert inspected.json()["digest"] == image.digest


def test_nothing_listening_on_loopback_is_reported(cli: Any) -> None:
    port = free_port()
    result = cli("ls", f"127.0.0.1:{port}", "--timeout", "5")
    assert result.code == 1
    assert f"cannot reach registry 127.0.0.1:{port}" in result.err


def test_other_hosts_stay_https(cli: Any) -> None:
    # `.invalid` never resolves (RFC 6761): the one attempt made is HTTPS, never HTTP.
    result = cli("ls", "registry.invalid:5000", "--timeout", "5")
    assert result.code == 1
    assert "https://registry.invalid:5000" in result.err
    assert "http://registry.invalid" not in result.err
