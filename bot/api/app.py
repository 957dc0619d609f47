"""The ASGI app of `ghostwrite serve`: an OpenAI-compatible raw-text completions API (FastAPI), the
writing page at `/`, and /health. A frontend like the CLI: it imports only bot.service, and the model and
the store run on the service's worker threads, never on the event loop.

    GET  /v1/models            every registered model (NAME, the newest) and version (NAME@vN), with its card
    GET  /v1/models/{id}       one of them, or 404
    POST /v1/completions       completions.py
    GET  /v1/settings          the settings contract as JSON schema, and the limits (for the page)
    GET  /health               200 when the store opens and a model is registered, else 503
    GET  /                     the writing page (static/index.html)
    GET  /docs                 OpenAPI docs
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse

from bot.service import ContinuationService, Ghostwrite, GhostwriteError, json_schema

from . import completions, errors
from .body import MAX_CHOICES, MAX_LOGPROBS, request_schema
from .guard import ApiConfig, BodyLimit, Gate, Keys, RateLimiter

log = logging.getLogger("ghostwrite.api")
PAGE = Path(__file__).parent / "static" / "index.html"


async def caller(request: Request) -> str | None:
    """The API key's name (401 without a right one), or None when the server needs no key."""
    keys: Keys = request.app.state.keys
    if not keys:
        return None
    return keys.who(request.headers.get("authorization"))


def _created(card: dict) -> int:
    try:
        return int(datetime.fromisoformat(str(card.get("created"))).timestamp())
    except (TypeError, ValueError):
        return 0


def _model_entry(card: dict, model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": _created(card), "owned_by": "ghostwrite",
            "version": card.get("version"), "card": card}


def create_app(config: ApiConfig | None = None, service: Ghostwrite | None = None) -> FastAPI:
    """The app. Without `service`, it makes a ContinuationService with a worker thread per concurrent
    generation (and closes it at shutdown)."""
    config = config or ApiConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = service is None
        svc = service or ContinuationService(default_model=config.model, workers=config.max_concurrent + 4)
        app.state.svc = svc
        app.state.gate = Gate(config.max_concurrent, config.max_queue)
        try:
            await to_thread.run_sync(svc.warm_up, config.model)
        except GhostwriteError as e:
            log.warning("not warmed up: %s", e)
        try:
            yield
        finally:
            if own:
                await to_thread.run_sync(svc.close)

    app = FastAPI(title="ghostwrite", version="1", lifespan=lifespan,
                  description="Raw text completions in an author's voice, OpenAI-compatible (no chat template).")
    app.state.config = config
    app.state.keys = Keys(config.keys)
    app.state.limiter = RateLimiter(config.rate_per_minute if config.keys else 0)
    errors.install(app)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, limit=config.max_body)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(PAGE, media_type="text/html; charset=utf-8")

    @app.get("/health")
    async def health(request: Request):
        try:
            await to_thread.run_sync(request.app.state.svc.health)
        except GhostwriteError as e:
            return errors.error_response(503, str(e), "unhealthy")
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models(request: Request, _who: str | None = Depends(caller)):
        svc = request.app.state.svc
        cards = await to_thread.run_sync(lambda: svc.models(all_versions=True))
        newest: dict[str, dict] = {}
        for c in cards:
            if c.get("version", 0) >= newest.get(c["name"], {}).get("version", 0):
                newest[c["name"]] = c
        data = [_model_entry(c, name) for name, c in sorted(newest.items())]
        data += [_model_entry(c, f"{c['name']}@v{c.get('version')}")
                 for c in sorted(cards, key=lambda c: (c["name"], c.get("version", 0)))]
        return {"object": "list", "data": data}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request, _who: str | None = Depends(caller)):
        svc = request.app.state.svc
        try:
            name, version = await to_thread.run_sync(svc.resolve, model_id)
            card = await to_thread.run_sync(svc.card, f"{name}@v{version}")
        except GhostwriteError as e:
            raise errors.ApiError(404, str(e), "model_not_found", "model") from None
        return _model_entry(card, model_id)

    @app.get("/v1/settings")
    async def settings(request: Request):
        svc = request.app.state.svc
        return {"settings": json_schema(), "request": request_schema(), "max_prompt_chars": svc.max_prompt_chars,
                "context_chars": svc.story_context_chars,
                "max_story_chars": svc.max_story_chars, "max_logprobs": MAX_LOGPROBS, "max_choices": MAX_CHOICES,
                "keys": bool(request.app.state.keys)}

    @app.post("/v1/completions", openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": request_schema()}}}})
    async def create_completion(request: Request, who: str | None = Depends(caller)):
        if who is not None:
            request.app.state.limiter.check(who)
        return await completions.complete(request, who)

    return app


def app_from_env() -> FastAPI:
    """For uvicorn's worker processes (`ghostwrite serve --workers N`): the config `serve` put in
    GHOSTWRITE_API_CONFIG."""
    return create_app(ApiConfig.from_env(os.environ.get("GHOSTWRITE_API_CONFIG", "{}")))


__all__ = ["ApiConfig", "app_from_env", "create_app"]
