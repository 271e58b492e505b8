"""What the UI's forms do: log in and out, delete, start garbage collection. Each is the
same operation the API or the CLI does (a tag delete is the API's tag delete), checked
against what the person may do, after the form's CSRF token (see WebUI._check_form)."""

from __future__ import annotations

import base64
import logging
from urllib.parse import urlsplit

from dockyard.api.http import Response
from dockyard.auth import AuthDenied
from dockyard.registry.gc import GCOptions
from dockyard.registry.gc_runs import GCAlreadyRunning
from dockyard.registry.reference import Digest
from dockyard.ui.app import Page, Refused, redirect

log = logging.getLogger("dockyard.ui")


def _next(page: Page) -> str:
    """Where to go after logging in: a page of this UI only (never another site)."""
    target = page.form.get("next", "")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith(page.base + "/") \
            or "\\" in target:
        return page.url("/")
    return target


async def log_in(page: Page) -> Response:
    passwords = page.ui.passwords
    if passwords is None:
        raise Refused(404, "This registry has no login.")
    user, password = page.form.get("username", ""), page.form.get("password", "")
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        # The API's own check: the same users, and the same throttle on failures.
        identity = await passwords.authenticate(f"Basic {credentials}", page.request.client, [])
    except AuthDenied as denied:
        status = 429 if denied.throttled else 401
        message = ("Too many failed logins; try again later." if denied.throttled
                   else "Wrong user name or password.")
        response = page.ui.render(page, "login.html", status, next=page.form.get("next", ""),
                                  failed=message)
        if denied.throttled:
            response.headers["Retry-After"] = str(denied.retry_after)
        return response
    await page.ui.start_session(page, identity.user)
    log.info("ui: %s logged in from %s", identity.user, page.request.client)
    return redirect(_next(page))


async def log_out(page: Page) -> Response:
    await page.ui.start_session(page, None)
    return redirect(page.url("/login") if page.viewer.can_log_in else page.url("/"))


def _check_delete(page: Page, name: str) -> None:
    if not page.viewer.may_pull(name):
        raise Refused(404, "There is no such repository, or you may not see it.")
    if not page.viewer.may_delete(name):
        raise Refused(403, "You may not delete in this repository.")


async def delete_tag(page: Page, name: str, tag: str) -> Response:
    _check_delete(page, name)
    repository = page.registry.repository(name)
    await repository.check_deletable()
    await repository.manifests.delete(tag)
    log.info("ui: %s deleted tag %s:%s", page.viewer.user or "anonymous", name, tag)
    return redirect(page.repository_url(name))


async def delete_manifest(page: Page, name: str, digest: str) -> Response:
    _check_delete(page, name)
    repository = page.registry.repository(name)
    await repository.check_deletable()
    await repository.manifests.delete(str(Digest.parse(digest)))
    log.info("ui: %s deleted manifest %s@%s", page.viewer.user or "anonymous", name, digest)
    return redirect(page.repository_url(name))


async def delete_repository(page: Page, name: str) -> Response:
    _check_delete(page, name)
    deleted = await page.browser.delete_repository(name)
    log.info("ui: %s deleted repository %s (%d manifests)", page.viewer.user or "anonymous",
             name, len(deleted))
    return redirect(page.url("/"))


async def start_gc(page: Page) -> Response:
    if not page.viewer.is_admin:
        raise Refused(403, "Only administrators may start garbage collection.")
    dry_run = page.form.get("dryrun") == "true"
    options = GCOptions(dry_run=dry_run, delete_untagged=page.form.get("untagged") == "true",
                        grace_period=page.registry.gc.grace_period,
                        sole_writer=page.registry.gc.sole_writer)
    try:
        await page.registry.gc.start(options, "ui")
    except GCAlreadyRunning:
        pass  # the storage page shows the run in progress
    else:
        log.info("ui: %s started garbage collection%s", page.viewer.user or "anonymous",
                 " (dry run)" if dry_run else "")
    return redirect(page.url("/storage"))
