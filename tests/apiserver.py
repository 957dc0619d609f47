"""A real `ghostwrite serve` app on 127.0.0.1 (uvicorn in a thread, a free port) for the API tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(config=None, service=None):
    """Yield the base URL of the app served on a free loopback port; stopped at the end."""
    import uvicorn

    from bot.api import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(config, service), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
