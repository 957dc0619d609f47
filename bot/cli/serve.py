"""`ghostwrite serve`: the OpenAI-compatible completions API and the writing page (bot/api), on uvicorn.

Safe by default: it binds 127.0.0.1; on any other address it refuses to start (one line, exit 2) unless
API keys are configured (GHOSTWRITE_API_KEYS=name:key,… or --keys-file, one `name:key` a line). Behind a
TLS-terminating proxy in production (deploy/README.md)."""

from __future__ import annotations

import os
from typing import Optional

import typer

from bot.cli.common import fail


def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; not loopback needs API keys."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free one)."),
    model: Optional[str] = typer.Option(None, "--model", help="Default model (NAME or NAME@vN) for requests without one."),
    keys_file: Optional[str] = typer.Option(None, "--keys-file", help="API keys, one NAME:KEY a line (also GHOSTWRITE_API_KEYS)."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Processes (each with its own batching engine)."),
    max_concurrent: int = typer.Option(64, "--max-concurrent", min=1, max=4096, help="Generations at once (per process)."),
    max_queue: int = typer.Option(256, "--max-queue", min=0, max=100_000, help="Requests waiting beyond those; more get 429."),
    rate_limit: float = typer.Option(120, "--rate-limit", min=0, max=1e6, help="Requests a minute per API key (0 = none)."),
    max_body: int = typer.Option(1_000_000, "--max-body", min=1024, max=100_000_000, help="Largest request body, bytes."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="Allow this origin (repeatable; default: none)."),
    lenient: bool = typer.Option(False, "--lenient", help="Ignore body fields ghostwrite does not know (else 400)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
):
    """Serve the OpenAI-compatible completions API (/v1/completions, /v1/models) and the writing page at /."""
    from bot.api import ApiConfig, is_loopback, load_keys

    keys = load_keys(keys_file)
    if not is_loopback(host) and not keys:
        fail(f"refusing to serve on {host} without API keys: set GHOSTWRITE_API_KEYS=name:key or --keys-file "
             "(or bind 127.0.0.1)")
    config = ApiConfig(keys=keys, rate_per_minute=rate_limit, max_concurrent=max_concurrent, max_queue=max_queue,
                       max_body=max_body, cors_origins=tuple(cors_origin), model=model,
                       lenient=lenient)
    import uvicorn
    from uvicorn.config import LOG_LEVELS

    if log_level.lower() not in LOG_LEVELS:  # (uvicorn itself raises a KeyError from deep in its start)
        fail(f"--log-level is one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
    _check_bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"ghostwrite serving on http://{shown}:{port}/ (API: /v1, docs: /docs)"
          f"{'; keys: ' + ', '.join(sorted(keys)) if keys else ''}", flush=True)
    if workers > 1:
        os.environ["GHOSTWRITE_API_CONFIG"] = config.to_env()
        uvicorn.run("bot.api.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, timeout_graceful_shutdown=10)
    else:
        from bot.api import create_app

        uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=10)


def _check_bind(host: str, port: int) -> None:
    """An address that cannot be bound (in use, not this machine's, not an address) is one line, exit 2, before
    uvicorn starts (it logs the error and exits 3 after starting the application). A bind that only then loses a
    race is uvicorn's to report."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            s.bind(address)
    except (OSError, UnicodeError, ValueError) as e:
        fail(f"cannot serve on {host}:{port}: {getattr(e, 'strerror', None) or e}")
