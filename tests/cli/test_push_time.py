"""When a manifest was pushed: `Last-Modified` on manifest GET/HEAD (dockyard), shown by
`dockyard tags --json` and `inspect`; absent where the registry does not say (distribution).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from tests.support.oci import OCI_MANIFEST, make_image, push_image
from tests.support.server import RunningRegistry

ACCEPT = {"Accept": OCI_MANIFEST}


def between(text: str, earliest: float, latest: float) -> bool:
    # HTTP dates have whole seconds; allow for that and a little clock skew.
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    return earliest - 2 <= moment <= latest + 2


def test_manifest_answers_carry_last_modified(any_registry: RunningRegistry) -> None:
    first, second = make_image(), make_image()
    with any_registry.client() as client:
        before = time.time()
        push_image(client, "app", "v1", first)
        push_image(client, "app", "v2", second)
        after = time.time()
        for method in ("GET", "HEAD"):
            for reference in ("v1", first.digest, "v2"):
                response = client.request(method, f"/v2/app/manifests/{reference}",
                                          headers=ACCEPT)
                assert response.status_code == 200
                header = response.headers.get("Last-Modified")
                if any_registry.kind == "distribution":
                    assert header is None
                    continue
                assert header is not None, (method, reference)
                moment = parsedate_to_datetime(header).timestamp()
                assert before - 2 <= moment <= after + 2, header


def test_tags_and_inspect_show_push_time(cli: Any, any_registry: RunningRegistry) -> None:
    image = make_image()
    with any_registry.client() as client:
        before = time.time()
        push_image(client, "app", "v1", image)
        push_image(client, "app", "latest", image)
        after = time.time()
    reference = f"{any_registry.host}/app"
    listed = cli("tags", "--insecure", "--json", reference)
    assert listed.code == 0, listed.err
    inspected = cli("inspect", "--insecure", "--json", f"{reference}:v1")
    assert inspected.code == 0, inspected.err
    by_digest = cli("inspect", "--insecure", "--json", f"{reference}@{image.digest}")
    assert by_digest.code == 0, by_digest.err
    table = cli("inspect", "--insecure", f"{reference}:v1")
    assert table.code == 0, table.err
    if any_registry.kind == "distribution":
        assert listed.json() == {"repository": reference, "tags": ["latest", "v1"]}
        assert "pushed" not in inspected.json() and "pushed" not in by_digest.json()
        assert "Pushed" not in table.out
        return
    pushed = listed.json()["pushed"]
    assert sorted(pushed) == ["latest", "v1"]
    assert all(between(moment, before, after) for moment in pushed.values()), pushed
    assert between(inspected.json()["pushed"], before, after)
    assert between(by_digest.json()["pushed"], before, after)
    assert "Pushed" in table.out
    assert datetime.fromisoformat(pushed["v1"].replace("Z", "+00:00")).tzinfo == UTC
