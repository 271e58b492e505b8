"""The web UI in a real browser: Debian's chromium, driven by Playwright.

An admin logs in, finds a repository by typing part of its name, opens an image that
skopeo pushed (several layers) with a signature that oras attached, downloads a layer,
deletes a tag and runs a garbage-collection dry run. On the way the main pages are
captured, light and dark; with DOCKYARD_SCREENSHOTS=DIR they are written there (the
README shows the ones in docs/ui), otherwise beside the test's other files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import oras.client
import oras.oci
import pytest

from dockyard.auth.htpasswd import hash_password
from tests.support.clients import Skopeo
from tests.support.images import OCI_MANIFEST, Image, build_image, write_image_layout
from tests.support.server import IN_CI, RunningRegistry, require_tool, run_registry
from tests.ui.support import push

try:
    from playwright import sync_api
except ImportError:  # comes with '.[test]'; a laptop without it skips, CI does not
    if IN_CI:
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

USER, PASSWORD = "admin", "harbour-lights"
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
# What a headless chromium needs on a machine with no network and no display.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 860}
TIMEOUT_MS = 15_000
# What sticks out past the right edge of the window (tag, class, right edge, text).
WIDER_THAN_THE_WINDOW = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= width) return [];
  return [...document.querySelectorAll("body *")]
    .filter((node) => node.getBoundingClientRect().right > width + 1)
    .map((node) => `${node.tagName}.${node.className} ${Math.round(
      node.getBoundingClientRect().right)} ${(node.textContent || "").slice(0, 30)}`)
    .slice(0, 8);
}"""


@dataclass
class Shop:
    registry: RunningRegistry
    layers: list[bytes]  # of shop/web:v1, in order
    signature: str  # digest of the referrer oras pushed


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    skopeo = Skopeo(require_tool("skopeo"), tmp_path_factory.mktemp("skopeo"))
    tmp = tmp_path_factory.mktemp("ui-browser")
    users = tmp / "htpasswd"
    users.write_text(f"{USER}:{hash_password(PASSWORD, rounds=4)}\n")
    config = {"ui": {"enabled": True},
              "auth": {"htpasswd": {"realm": "Registry", "path": str(users)}},
              # Nothing is pushed during the dry run: what was just deleted counts as garbage.
              "storage": {"gc": {"graceperiod": "0s"}}}
    with run_registry(tmp, config=config) as registry:
        v1 = shop_image(b"console.log('shop');\n")
        v2 = shop_image(b"console.log('shop, again');\n")
        remote = f"docker://{registry.host}/shop/web"
        for image, tags in ((v1, ("v1", "stable")), (v2, ("v2",))):
            layout = write_image_layout(tmp / tags[0], tags[0], image)
            for tag in tags:
                skopeo.copy(layout.ref(tags[0]), f"{remote}:{tag}",
                            f"--dest-creds={USER}:{PASSWORD}")
        signature = sign_with_oras(registry, tmp, "shop/web", v1.manifest.digest,
                                   len(v1.manifest.data))
        with httpx.Client(base_url=registry.url, auth=(USER, PASSWORD)) as client:
            for name in ("shop/api", "tools/lint", "tools/format"):
                push(client, name, "latest", build_image([{f"{name}.txt": name.encode()}]))
        layers = [blob.data for blob in v1.blobs if blob.digest != v1.config.digest]
        yield Shop(registry, layers, signature)


def shop_image(script: bytes) -> Image:
    """Three layers; images made with different scripts share the first two."""
    return build_image(
        [{"etc/motd": b"welcome\n"}, {"srv/www/index.html": b"<h1>shop</h1>\n" * 200},
         {"srv/www/app.js": script * 400}],
        labels={"org.opencontainers.image.title": "the shop's web front"},
    )


def sign_with_oras(registry: RunningRegistry, tmp: Path, name: str, digest: str,
                   size: int) -> str:
    """Attach a signature-like artifact to `digest` with oras; the referrer's digest."""
    client = oras.client.OrasClient(hostname=registry.host, insecure=True,
                                    auth_backend="basic")
    client.auth.set_basic_auth(USER, PASSWORD)
    payload = tmp / "signature.json"
    payload.write_text(json.dumps({"critical": {"image": {"docker-manifest-digest": digest}}}))
    config = tmp / "signature-config.json"
    config.write_text("{}")
    response = client.push(
        target=f"{registry.host}/{name}:signature",
        files=[f"{payload}:application/vnd.dev.cosign.simplesigning.v1+json"],
        manifest_config=f"{config}:{SIGNATURE_TYPE}",
        disable_path_validation=True,
        subject=oras.oci.Subject(OCI_MANIFEST, digest, size),
        quiet=True,
    )
    assert response.status_code == 201, response.text
    return str(response.headers["docker-content-digest"])


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    executable = require_tool("chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("DOCKYARD_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def snap(page: Any, folder: Path, name: str) -> None:
    """Capture the whole page; a PNG that is there and not empty."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def log_in(page: Any, url: str) -> None:
    page.goto(url + "/ui/")
    assert "/ui/login" in page.url  # not logged in yet: sent to the form
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/ui/")


def test_a_person_logs_in_finds_an_image_deletes_a_tag_and_runs_a_dry_run(
    shop: Shop, chromium: Any, screenshots: Path
) -> None:
    url = shop.registry.url
    expect = sync_api.expect
    context = chromium.new_context(viewport=VIEWPORT, color_scheme="light",
                                   accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    try:
        log_in(page, url)
        expect(page.get_by_role("link", name="tools/lint")).to_be_visible()
        snap(page, screenshots, "repositories-light")

        # Typing filters the list in place (no submit): only the shop's repositories stay.
        page.get_by_label("Find a repository").press_sequentially("shop", delay=30)
        expect(page.get_by_role("link", name="tools/lint")).to_have_count(0)
        expect(page.get_by_role("link", name="shop/api")).to_be_visible()
        assert "q=shop" in page.url

        page.get_by_role("link", name="shop/web").click()
        page.wait_for_url(url + "/ui/r/shop/web")
        tags = page.locator("table.list tbody tr")
        expect(tags).to_have_count(4)  # v1, stable, v2 and the signature's tag
        snap(page, screenshots, "repository-light")

        page.get_by_role("link", name="v1", exact=True).click()
        page.wait_for_url(url + "/ui/r/shop/web/-/image/v1")
        layer_rows = page.locator("h2:has-text('Layers') + table tbody tr")
        expect(layer_rows).to_have_count(len(shop.layers))
        expect(page.get_by_text(SIGNATURE_TYPE)).to_be_visible()
        expect(page.get_by_text("the shop's web front")).to_be_visible()
        snap(page, screenshots, "image-light")

        # The first layer downloads with the session's cookie, byte for byte.
        with page.expect_download() as waiting:
            layer_rows.first.get_by_role("link").click()
        download = Path(waiting.value.path())
        assert hashlib.sha256(download.read_bytes()).digest() == \
            hashlib.sha256(shop.layers[0]).digest()

        # Delete the tag `stable` from the repository page; the confirm dialog is accepted.
        page.goto(url + "/ui/r/shop/web")
        dialogs: list[str] = []

        def accept(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        page.on("dialog", accept)
        row = page.locator("tr", has=page.get_by_role("link", name="stable", exact=True))
        row.get_by_role("button", name="Delete tag").click()
        page.wait_for_load_state()
        expect(page.get_by_role("link", name="stable", exact=True)).to_have_count(0)
        expect(page.get_by_role("link", name="v1", exact=True)).to_be_visible()
        assert dialogs and "stable" in dialogs[0]

        # Delete the image v2: the confirmation names the tag that goes with it.
        row = page.locator("tr", has=page.get_by_role("link", name="v2", exact=True))
        row.get_by_role("link", name="Delete image…").click()
        expect(page.locator("main")).to_contain_text("the tag: v2")
        page.get_by_role("button", name="Delete").click()
        page.wait_for_url(url + "/ui/r/shop/web")
        expect(page.get_by_role("link", name="v2", exact=True)).to_have_count(0)
        expect(tags).to_have_count(2)

        # A dry run says what a collection would free and deletes nothing.
        page.goto(url + "/ui/storage")
        page.get_by_role("button", name="What would a collection free? (dry run)").click()
        freed = page.locator("p", has_text="Would free")
        expect(freed).to_be_visible(timeout=60_000)
        # v2's own layer, its config and its manifest; v1's layers stay.
        assert "0 B" not in freed.locator("strong").inner_text()
        snap(page, screenshots, "storage-light")
        assert errors == []
    finally:
        context.close()

    with httpx.Client(base_url=url, auth=(USER, PASSWORD)) as client:
        left = client.get("/v2/shop/web/tags/list").json()["tags"]
        assert sorted(left) == ["signature", "v1"]
        assert client.get(f"/v2/shop/web/manifests/{shop.signature}",
                          headers={"Accept": OCI_MANIFEST}).status_code == 200


def test_the_main_pages_in_the_dark(shop: Shop, chromium: Any, screenshots: Path) -> None:
    url = shop.registry.url
    context = chromium.new_context(viewport=VIEWPORT, color_scheme="dark")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        log_in(page, url)
        light_background = "rgb(255, 255, 255)"
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background != light_background, background
        snap(page, screenshots, "repositories-dark")
        page.goto(url + "/ui/r/shop/web")
        snap(page, screenshots, "repository-dark")
        page.goto(url + "/ui/r/shop/web/-/image/v1")
        snap(page, screenshots, "image-dark")
        page.goto(url + "/ui/storage")
        snap(page, screenshots, "storage-dark")
    finally:
        context.close()


def test_a_phone_sized_window_reads_without_scrolling_sideways(
    shop: Shop, chromium: Any
) -> None:
    url = shop.registry.url
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                   has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        log_in(page, url)
        for path in ("/ui/", "/ui/r/shop/web", "/ui/r/shop/web/-/image/v1"):
            page.goto(url + path)
            wide = page.evaluate(WIDER_THAN_THE_WINDOW)
            assert wide == [], (path, wide)
    finally:
        context.close()


def test_keyboard_alone_reaches_the_search_box_and_a_repository(
    shop: Shop, chromium: Any
) -> None:
    url = shop.registry.url
    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        log_in(page, url)
        for _ in range(40):  # tab until the search box has focus
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "q":
                break
        else:
            pytest.fail("the search box is not reachable with Tab")
        page.keyboard.type("tools/li")
        page.keyboard.press("Enter")
        page.wait_for_url("**/ui/?q=tools*")
        link = page.get_by_role("link", name="tools/lint")
        link.focus()
        page.keyboard.press("Enter")
        page.wait_for_url(url + "/ui/r/tools/lint")
    finally:
        context.close()
