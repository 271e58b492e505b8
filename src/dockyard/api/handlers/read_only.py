"""The admin API's read-only switch: `GET /admin/readonly` reports read-only maintenance
mode, `POST /admin/readonly?enabled=true|false` (or a JSON body `{"enabled": true}`)
switches it for every worker and every instance sharing the index."""

from __future__ import annotations

import json
import logging

from dockyard.api.errors import HTTPError
from dockyard.api.handlers.context import Context
from dockyard.api.http import JSONResponse, Response

log = logging.getLogger("dockyard.maintenance")
BODY_LIMIT = 4096
TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")


async def read_only_status(ctx: Context) -> Response:
    return JSONResponse(200, (await ctx.registry.read_only.state()).as_dict())


async def switch_read_only(ctx: Context) -> Response:
    enabled = await _requested(ctx)
    user = ctx.identity.user if ctx.identity is not None else None
    state = await ctx.registry.read_only.switch(enabled, user)
    log.warning("read-only maintenance mode switched %s by %s", "on" if enabled else "off",
                user or f"an anonymous client at {ctx.request.client}")
    return JSONResponse(200, state.as_dict())


def _invalid(message: str, detail: object) -> HTTPError:
    return HTTPError(400, "INVALID_PARAMETER", message, detail)


async def _requested(ctx: Context) -> bool:
    """`enabled` from the query, else from a JSON object in the body."""
    text = ctx.request.query_value("enabled")
    if text is not None:
        value = text.strip().lower()
        if value in TRUE or value in FALSE:
            return value in TRUE
        raise _invalid("enabled must be true or false", {"enabled": text[:50]})
    body = await ctx.request.read(BODY_LIMIT) if ctx.request.may_have_body else b""
    if not body.strip():
        raise _invalid("say enabled=true or enabled=false (in the query, or a JSON body "
                       '{"enabled": true})', None)
    try:
        fields = json.loads(body)
    except ValueError:
        raise _invalid("the body is not JSON", None) from None
    given = fields.get("enabled") if isinstance(fields, dict) else None
    if not isinstance(given, bool):
        raise _invalid('the body must be a JSON object {"enabled": true} or {"enabled": false}',
                       {"enabled": given if isinstance(given, str | int | None) else None})
    return given
