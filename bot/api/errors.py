"""Errors shaped as the OpenAI API shapes them: `{"error": {"message", "type", "param", "code"}}` with
the HTTP status that goes with them (400 bad request or settings, 401 no or wrong key, 404 unknown model
or route, 413 body too large, 429 over a limit, 500 a bug). One handler turns every refusal into that shape,
so a client (the `openai` package, SillyTavern, mikupad) shows the message."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from bot.service import GhostwriteError

log = logging.getLogger("ghostwrite.api")

TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
         405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
         500: "server_error", 503: "server_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.status, self.message, self.code, self.param)


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"), "param": param,
                      "code": code}}


def error_response(status: int, message: str, code: str | None = None, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, e: ApiError):
        return error_response(e.status, e.message, e.code, e.param, e.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, e: HTTPException):
        message = e.detail if isinstance(e.detail, str) else str(e.detail)
        code = "not_found" if e.status_code == 404 else None
        return error_response(e.status_code, message, code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return error_response(400, f"{where}: {first.get('msg', 'invalid request')}".strip(": "), param=where or None)

    @app.exception_handler(GhostwriteError)
    async def _refused(_request: Request, e: GhostwriteError):  # after the door: the store, the model files
        return error_response(503, str(e) or type(e).__name__, "unavailable")

    @app.exception_handler(Exception)
    async def _bug(_request: Request, e: Exception):
        log.exception("request failed")
        return error_response(500, f"internal error: {type(e).__name__}", "internal_error")
