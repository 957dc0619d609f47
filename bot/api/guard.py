"""Who may ask, and how much: API keys, per-key rate limits, the global concurrency cap with its queue,
the body cap. Safe by default: `ghostwrite serve` binds 127.0.0.1; on any other address it refuses to
start without keys (`bot/cli/serve.py`).

Keys come from GHOSTWRITE_API_KEYS (`name:key,name:key`) or a keys file (one `name:key` a line, `#`
comments), never from the command line. A key is compared in constant time (hmac.compare_digest over
every configured key, no early exit); the caller's name is stored with its generations."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from bot.service import GhostwriteError

from .errors import ApiError

MIN_KEY_CHARS = 16


@dataclass
class ApiConfig:
    """How a server runs; `ghostwrite serve`'s options. Passed to worker processes as JSON (to_env)."""

    keys: dict[str, str] = field(default_factory=dict)  # name → key; empty: no key needed (loopback only)
    rate_per_minute: float = 120.0  # per key (0 = no limit); needs keys
    max_concurrent: int = 64  # generations running at once, all callers together
    max_queue: int = 256  # requests waiting for a slot beyond those; more get 429
    max_body: int = 1_000_000  # bytes
    cors_origins: tuple[str, ...] = ()  # none: no CORS headers (the page is same-origin)
    model: str | None = None  # the default model
    lenient: bool = False  # ignore body fields that are neither OpenAI's nor the contract's (else 400)

    def to_env(self) -> str:
        import json

        return json.dumps({**self.__dict__, "cors_origins": list(self.cors_origins)})

    @classmethod
    def from_env(cls, raw: str) -> ApiConfig:
        import json

        d = json.loads(raw)
        d["cors_origins"] = tuple(d.get("cors_origins") or ())
        return cls(**d)


def parse_keys(text: str, where: str, sep: str = "\n") -> dict[str, str]:
    """`name:key` entries (blank and `#` lines skipped) → {name: key}; one line of error otherwise."""
    keys: dict[str, str] = {}
    for n, raw in enumerate(text.split(sep), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, key = line.partition(":")
        name, key = name.strip(), key.strip()
        if not colon or not name or not key:
            raise GhostwriteError(f"{where}: entry {n} is not NAME:KEY")
        if len(key) < MIN_KEY_CHARS:
            raise GhostwriteError(f"{where}: the key of {name!r} is shorter than {MIN_KEY_CHARS} characters")
        if name in keys:
            raise GhostwriteError(f"{where}: {name!r} is named twice")
        keys[name] = key
    return keys


def load_keys(keys_file: str | None) -> dict[str, str]:
    """The keys of GHOSTWRITE_API_KEYS and of `keys_file` together."""
    keys = parse_keys(os.environ.get("GHOSTWRITE_API_KEYS", ""), "GHOSTWRITE_API_KEYS", sep=",")
    if keys_file:
        path = Path(os.path.expanduser(keys_file))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise GhostwriteError(f"cannot read the keys file {path}: {getattr(e, 'strerror', None) or e}") from None
        for name, key in parse_keys(text, str(path)).items():
            if name in keys:
                raise GhostwriteError(f"{path}: {name!r} is also in GHOSTWRITE_API_KEYS")
            keys[name] = key
    return keys


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Keys:
    """Constant-time lookup: the digest of what was given is compared with every key's digest."""

    def __init__(self, keys: dict[str, str]):
        self._digests = [(name, hashlib.sha256(k.encode()).digest()) for name, k in keys.items()]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def who(self, authorization: str | None) -> str:
        """The key's name for an `Authorization: Bearer KEY` header, or a 401."""
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "an API key is needed: send `Authorization: Bearer KEY`", "invalid_api_key",
                           headers={"WWW-Authenticate": "Bearer"})
        digest = hashlib.sha256(given.strip().encode("utf-8", "surrogateescape")).digest()
        found = None
        for name, d in self._digests:
            if hmac.compare_digest(d, digest) and found is None:
                found = name
        if found is None:
            raise ApiError(401, "incorrect API key", "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        return found


class RateLimiter:
    """A token bucket per caller: `rate` requests a minute, as many at once."""

    def __init__(self, rate_per_minute: float):
        self.rate = rate_per_minute / 60.0
        self.burst = max(1.0, rate_per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, caller: str) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        level, then = self._buckets.get(caller, (self.burst, now))
        level = min(self.burst, level + (now - then) * self.rate)
        if level < 1:
            wait = math.ceil((1 - level) / self.rate)
            raise ApiError(429, f"rate limit reached for {caller!r}: {self.burst:g} requests a minute",
                           "rate_limit_exceeded", headers={"Retry-After": str(wait)})
        self._buckets[caller] = (level - 1, now)


class Gate:
    """At most `limit` generations at once; up to `queue` more wait their turn; beyond that a 429 whose
    Retry-After is the recent median run time (at least 1 s)."""

    def __init__(self, limit: int, queue: int):
        self.limit, self.queue = limit, queue
        self._sem = asyncio.Semaphore(limit)
        self.waiting = 0
        self.active = 0
        self._durations: deque[float] = deque(maxlen=64)

    def retry_after(self) -> int:
        d = sorted(self._durations)
        return max(1, math.ceil(d[len(d) // 2])) if d else 1

    async def enter(self, slots: int = 1) -> float:
        if self.active + self.waiting + slots > self.limit + self.queue:
            raise ApiError(429, f"the server is busy: {self.active} generations running and {self.waiting} "
                           "waiting; try again shortly", "server_busy",
                           headers={"Retry-After": str(self.retry_after())})
        self.waiting += slots
        try:
            for _ in range(slots):
                await self._sem.acquire()
        finally:
            self.waiting -= slots
        self.active += slots
        return time.monotonic()

    def leave(self, started: float, slots: int = 1) -> None:
        self.active -= slots
        self._durations.append(time.monotonic() - started)
        for _ in range(slots):
            self._sem.release()


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is a 413 before the app reads it (by its
    Content-Length, or counted as it arrives). The body is read here and replayed to the app."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or ()).get(b"content-length")
        too_big = False
        if length is not None and length.isdigit() and int(length) > self.limit:
            too_big = True
        chunks: list[bytes] = []
        size = 0
        more = not too_big
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                too_big = True
                break
            chunks.append(chunk)
            more = message.get("more_body", False)
        if too_big:
            from .errors import error_response

            response = error_response(413, f"the request body is over the limit of {self.limit:,} bytes",
                                      "request_too_large")
            return await response(scope, receive, send)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
