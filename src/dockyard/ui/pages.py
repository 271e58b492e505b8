"""The UI's pages: what each shows, read through the registry's browsing views."""

from __future__ import annotations

from dockyard.api.http import JSONResponse, Response, StreamResponse
from dockyard.registry.browse import SORTS, ManifestView
from dockyard.registry.reference import Digest
from dockyard.ui.app import Page, Refused
from dockyard.ui.render import linked_json

REPOSITORIES_PER_PAGE = 50
TAGS_PER_PAGE = 50


def render(page: Page, template: str, status: int = 200, **values: object) -> Response:
    return page.ui.render(page, template, status, **values)


def _check_pull(page: Page, name: str) -> None:
    # Unknown and forbidden look the same: a page does not tell who has what.
    if not page.viewer.may_pull(name):
        raise Refused(404, "There is no such repository, or you may not see it.")


async def repositories(page: Page) -> Response:
    search = page.query("q").strip()
    sort = page.query("sort", "name")
    sort = sort if sort in SORTS else "name"
    descending = page.query("order", "desc" if sort != "name" else "asc") == "desc"
    number = max(1, page.number("page", 1))
    found = await page.browser.repositories(
        search, sort, descending, (number - 1) * REPOSITORIES_PER_PAGE, REPOSITORIES_PER_PAGE,
        page.viewer.may_pull if page.viewer.restricted else None)
    return render(page, "repositories.html", found=found, search=search, sort=sort,
                  descending=descending, number=number,
                  building=not await page.registry.index_is_complete())


async def repository(page: Page, name: str) -> Response:
    _check_pull(page, name)
    summary = await page.browser.summary(name)
    search = page.query("q").strip()
    number = max(1, page.number("page", 1))
    tags = await page.browser.tags(name, search, (number - 1) * TAGS_PER_PAGE, TAGS_PER_PAGE)
    return render(page, "repository.html", name=name, summary=summary, tags=tags,
                  search=search, number=number, host=page.request.header("host") or "")


def _links(page: Page, view: ManifestView) -> dict[str, str]:
    """Each digest in a manifest, linked to its page: manifests to theirs, blobs to their
    download."""
    links: dict[str, str] = {}
    if view.config_descriptor is not None:
        links[view.config_descriptor.digest] = page.blob_url(view.repository,
                                                             view.config_descriptor.digest)
    for layer in view.layers:
        links[layer.digest] = page.blob_url(view.repository, layer.digest)
    for platform in view.platforms:
        links[platform.digest] = page.image_url(view.repository, platform.digest)
    if view.subject:
        links[view.subject] = page.image_url(view.repository, view.subject)
    return links


async def image(page: Page, name: str, reference: str) -> Response:
    _check_pull(page, name)
    view = await page.browser.manifest(name, reference)
    return render(page, "image.html", view=view,
                  manifest_json=linked_json(view.document, _links(page, view)),
                  host=page.request.header("host") or "")


async def blob(page: Page, name: str, digest: str) -> Response:
    _check_pull(page, name)
    parsed = Digest.parse(digest)
    opened = await page.registry.repository(name).blobs.open(parsed)
    filename = f"{parsed.algorithm}-{parsed.hex[:16]}"
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Length": str(opened.size),
        "Docker-Content-Digest": str(parsed),
        "Cache-Control": "private, max-age=3600",
    }
    return StreamResponse(200, opened.read(0, None), headers)


async def login_form(page: Page) -> Response:
    if not page.viewer.can_log_in:
        raise Refused(404, "This registry has no login: "
                           + ("everyone may browse it." if not page.viewer.must_log_in else
                              "its tokens come from another service."))
    return render(page, "login.html", next=page.query("next"), failed="")


async def storage(page: Page) -> Response:
    totals = await page.browser.storage()
    largest = await page.browser.repositories(
        "", "size", True, 0, 10, page.viewer.may_pull if page.viewer.restricted else None)
    status = await page.registry.gc.status()
    history = await page.registry.gc.history()
    return render(page, "storage.html", totals=totals, largest=largest, gc=status,
                  history=history)


async def gc_progress(page: Page) -> Response:
    """The running or last collection, for the storage page's live progress."""
    return JSONResponse(200, await page.registry.gc.status(), {"Cache-Control": "no-store"})


async def confirm_manifest_delete(page: Page, name: str, digest: str) -> Response:
    _check_pull(page, name)
    if not page.viewer.may_delete(name):
        raise Refused(403, "You may not delete in this repository.")
    view = await page.browser.manifest(name, digest)
    return render(page, "confirm.html", what="manifest", name=name, view=view,
                  action=page.repository_url(name, f"/-/manifest/{view.digest}/delete"))


async def confirm_repository_delete(page: Page, name: str) -> Response:
    _check_pull(page, name)
    if not page.viewer.may_delete(name):
        raise Refused(403, "You may not delete in this repository.")
    summary = await page.browser.summary(name)
    return render(page, "confirm.html", what="repository", name=name, summary=summary,
                  action=page.repository_url(name, "/-/delete"))
