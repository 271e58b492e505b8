"""A person at the web UI, as a browser without JavaScript would be: cookies kept, forms
posted with the CSRF token the page gave."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

from tests.support.images import Image, ImageIndex
from tests.support.oci import push_blob

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Visitor:
    def __init__(self, url: str, base: str = "/ui") -> None:
        self.client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
        self.base = base

    def __enter__(self) -> Visitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(self.base + path, **kwargs)

    def page(self, path: str, status: int = 200, **kwargs: Any) -> str:
        response = self.get(path, **kwargs)
        assert response.status_code == status, (response.status_code, response.text[:2000])
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        return response.text

    def csrf(self, path: str = "/") -> str:
        found = _CSRF.search(self.page(path))
        assert found, "no form on the page"
        return html.unescape(found.group(1))

    def post(self, path: str, data: dict[str, str] | None = None, csrf: str | None = None,
             **kwargs: Any) -> httpx.Response:
        form = dict(data or {})
        if csrf is not None:
            form["csrf"] = csrf
        return self.client.post(self.base + path, data=form, **kwargs)

    def log_in(self, user: str, password: str) -> httpx.Response:
        token = self.csrf("/login")
        return self.post("/login", {"username": user, "password": password,
                                    "next": self.base + "/"}, token)


def push(client: httpx.Client, name: str, reference: str, image: Image) -> None:
    for blob in image.blobs:
        push_blob(client, name, blob.data)
    response = client.put(f"/v2/{name}/manifests/{reference}", content=image.manifest.data,
                          headers={"Content-Type": image.manifest.media_type})
    assert response.status_code == 201, response.text


def push_index(client: httpx.Client, name: str, tag: str, index: ImageIndex) -> None:
    for image in index.images:
        push(client, name, image.manifest.digest, image)
    response = client.put(f"/v2/{name}/manifests/{tag}", content=index.index.data,
                          headers={"Content-Type": index.index.media_type})
    assert response.status_code == 201, response.text


def text_of(page: str) -> str:
    """A page's visible text, tags dropped and entities decoded, spaces collapsed."""
    without_tags = re.sub(r"<[^>]+>", " ", page)
    return " ".join(html.unescape(without_tags).split())
