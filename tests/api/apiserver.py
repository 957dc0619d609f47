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


class Held:
    """A service stream that stops after its first piece until `release` is set (or it is cancelled):
    a generation that is certainly still running, whatever the machine's speed."""

    def __init__(self, stream, cancel, release):
        self._s, self._cancel, self._release, self._n = stream, cancel, release, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._n == 1:
            while not self._release.wait(0.01) and not self._cancel.is_set():
                pass
        self._n += 1
        return next(self._s)

    def __getattr__(self, name):
        return getattr(self._s, name)


@contextlib.contextmanager
def holding(svc):
    """`svc`'s streams hold after their first piece until the yielded event is set."""
    release = threading.Event()
    real = svc.stream

    def stream(request, cancel=None):
        cancel = cancel or threading.Event()
        return Held(real(request, cancel), cancel, release)

    svc.stream = stream
    try:
        yield release
    finally:
        release.set()
        del svc.stream


def rows(svc, **kw):
    """The stored generations of the API (source `api`), newest first."""
    return svc.history(source=kw.pop("source", "api"), limit=None, **kw)


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


def assert_openai_error(r, status, *words):
    """An OpenAI-shaped error body with this status, its message naming `words`."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"} and isinstance(err["message"], str)
    for w in words:
        assert w in err["message"], err["message"]
    return err
