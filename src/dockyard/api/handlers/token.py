"""GET /auth/token: dockyard's token issuer over HTTP (the Docker registry token
specification's token endpoint)."""

from __future__ import annotations

from dockyard.api.errors import HTTPError
from dockyard.api.http import JSONResponse, Request, Response
from dockyard.auth.base import AuthDenied
from dockyard.auth.issuer import TokenIssuer, UnknownService
from dockyard.auth.policy import ScopeError, parse_scopes
from dockyard.metrics.own import count_auth_failure


async def issue_token(request: Request, issuer: TokenIssuer) -> Response:
    if request.method != "GET":
        raise HTTPError(405, "UNSUPPORTED", f"method {request.method} is not allowed here",
                        {"method": request.method}, {"Allow": "GET"})
    authorization = request.header("authorization")
    try:
        user = await issuer.login(authorization, request.client)
    except AuthDenied as denied:
        if authorization is not None or denied.throttled:
            count_auth_failure(denied.forbidden, denied.throttled)
        headers = {"WWW-Authenticate": denied.challenge} if denied.challenge else {}
        if denied.throttled:
            raise HTTPError(429, "TOOMANYREQUESTS", denied.message, None,
                            {"Retry-After": str(denied.retry_after), **headers}) from None
        raise HTTPError(401, "UNAUTHORIZED", denied.message, None, headers) from None
    request.user = user
    account = request.query_value("account")
    if account and user is not None and account != user:
        raise HTTPError(400, "INVALID_PARAMETER",
                        "account does not match the user of the credentials",
                        {"account": account[:100]})
    try:
        scopes = parse_scopes(request.query.get("scope", []))
        issued = issuer.issue(user, request.query_value("service"), scopes)
    except (ScopeError, UnknownService) as error:
        raise HTTPError(400, "INVALID_PARAMETER", str(error)) from None
    return JSONResponse(200, {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    }, {"Cache-Control": "no-store", "Pragma": "no-cache"})
