"""Every failure leaves the server as OpenAI's error object with a fitting HTTP status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("strop.server")

TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
         404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
         422: "invalid_request_error", 429: "rate_limit_error", 500: "server_error",
         503: "server_error"}


class APIError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, type: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or TYPES.get(status, "invalid_request_error")


def not_found(kind: str, object_id: str, param: str = "id", code: str | None = None) -> APIError:
    return APIError(404, f"No such {kind}: {object_id}", param=param, code=code)


def error_body(status: int, message: str, param: str | None = None, code: str | None = None,
               type: str | None = None) -> dict:
    return {"error": {"message": message, "type": type or TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def _response(status: int, message: str, param=None, code=None, type=None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code, type), status_code=status)


def _location(loc) -> str | None:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or None


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_request: Request, exc: APIError):
        return _response(exc.status, exc.message, exc.param, exc.code, exc.type)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError):
        # OpenAI answers malformed parameters with 400, naming the first bad one.
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = _location(first.get("loc", ()))
        message = first.get("msg", "invalid request")
        if param:
            message = f"Invalid value for '{param}': {message}"
        code = "missing_required_parameter" if first.get("type") == "missing" else "invalid_value"
        return _response(400, message, param, code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            message = f"Unknown request URL: {request.method} {request.url.path}."
            return _response(404, message, code="unknown_url")
        if exc.status_code == 405:
            return _response(405, f"Method {request.method} not allowed for {request.url.path}.",
                             code="method_not_allowed")
        return _response(exc.status_code, str(exc.detail))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def database_unavailable(request: Request, exc: Exception):
        # The database went away (restarted, network cut): say so with a status the client
        # retries, and keep serving; the pool reconnects once it is back.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    str(exc).splitlines()[0])
        return _response(503, "The database is unavailable right now; try again shortly.",
                         code="database_unavailable")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _response(500, f"The server had an error processing the request "
                              f"({type(exc).__name__}); it has been logged.", code="server_error")
