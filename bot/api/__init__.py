"""`ghostwrite serve`: an OpenAI-compatible raw-text completions API, the writing page, and the `llm`
plugin's neighbour. A frontend: it imports only bot.service (tests/test_architecture.py).

    app.py          the FastAPI app: /v1/models, /v1/completions, /v1/settings, /health, the page at /
    completions.py  POST /v1/completions: through the service's async streams (the shared batching engine)
    body.py         an OpenAI body → the service's requests (settings passed to the contract unchanged)
    guard.py        keys (constant-time), per-key rate limits, the concurrency gate and its queue, the body cap
    sse.py          server-sent events that stop the generation when the client leaves
    errors.py       OpenAI-shaped error bodies
    static/         the writing page (one HTML file, no build step)
"""

from .guard import ApiConfig, is_loopback, load_keys

__all__ = ["ApiConfig", "create_app", "is_loopback", "load_keys"]


def create_app(*args, **kwargs):
    from .app import create_app as make

    return make(*args, **kwargs)
