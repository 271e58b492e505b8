"""The admin API (http.admin.enabled): start garbage collection and follow it; see how far
notifications have been delivered."""

from __future__ import annotations

from dockyard.api.errors import HTTPError
from dockyard.api.handlers.context import Context
from dockyard.api.http import JSONResponse, Response
from dockyard.config.loader import ConfigError, parse_duration
from dockyard.registry.gc import GCOptions
from dockyard.registry.gc_runs import GCAlreadyRunning


def _flag(ctx: Context, name: str) -> bool:
    value = (ctx.request.query_value(name) or "false").lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise HTTPError(400, "INVALID_PARAMETER", f"{name} must be true or false",
                        {name: value[:50]})
    return value in ("true", "1", "yes")


async def gc_status(ctx: Context) -> Response:
    """The running or last garbage collection: state, progress, and its report."""
    return JSONResponse(200, await ctx.registry.gc.status())


async def start_gc(ctx: Context) -> Response:
    grace_text = ctx.request.query_value("graceperiod")
    try:
        grace = (parse_duration(grace_text, "graceperiod") if grace_text
                 else ctx.registry.gc.grace_period)
    except ConfigError as error:
        raise HTTPError(400, "INVALID_PARAMETER", str(error), {"graceperiod": grace_text}
                        ) from None
    options = GCOptions(dry_run=_flag(ctx, "dryrun"), delete_untagged=_flag(ctx, "deleteuntagged"),
                        grace_period=grace, sole_writer=ctx.registry.gc.sole_writer,
                        full=_flag(ctx, "full"))
    location = {"Location": ctx.urls.path("/admin/gc")}
    try:
        # Answered only once the run holds the store's lease: two instances asked at
        # the same moment cannot both say it started. In read-only mode, ReadOnly (405)
        # unless a dry run.
        await ctx.registry.gc.start(options, "http")
    except GCAlreadyRunning:
        return JSONResponse(409, await ctx.registry.gc.status(), location)
    return JSONResponse(202, {"state": "started", "options": options.__dict__}, location)


async def notifications(ctx: Context) -> Response:
    """Each configured endpoint: events waiting for it, sent, failures in a row, the last
    error."""
    from dockyard.notifications.status import delivery_report

    endpoints = ctx.registry.events.endpoints
    return JSONResponse(200, {"endpoints": await delivery_report(ctx.registry.index,
                                                                 endpoints)})
