"""Generating: a request through the door (`prepare`: its text repaired, prompt and settings checked, its
model resolved — once), the model loaded once per version and shared, the text streamed, and every
request recorded in the store — complete, interrupted (with what had been produced) or failed. A
generation that cannot be stored is kept in the spool (bot/store/spool.py) and written later, and the
result says so; when neither the database nor the spool can be written, nothing is generated.

Each request takes the newest registered version of its model unless pinned, so a retrained model serves
the next request without a restart. See docs/architecture.md.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

import generator
from generator import registry
from generator.corpora.corpus import unsurrogate
from generator.errors import GhostwriteError
from generator.generation.settings import CONTEXT_CHARS, SETTINGS, SamplingSettings, check_prompt
from generator.paths import home, models_dir

from .api import Prepared, Request, Result
from .bridge import AsyncStream
from .rows import GroupCommit

log = logging.getLogger("ghostwrite.service")
STORABLE_TTL_S = 1.0  # how long a spool found writable is trusted without probing it again


def clean_text(text):
    """The door every frontend's text comes in by (CLI argv and stdin, REPL input, Discord): text that is
    not valid UTF-8 has each undecodable byte (each lone surrogate) replaced with U+FFFD, and a note says
    so. Replacing rather than refusing: a piped file with one stray Latin-1 byte still gets its
    continuation, the reader sees where the damage was, and what is printed is what is stored.
    `bytes` are decoded here the same way. Returns (text, note or None)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "surrogateescape")
    if not isinstance(text, str):
        return text, None  # check_prompt says what is wrong with it
    try:
        text.encode("utf-8")
        return text, None
    except UnicodeEncodeError:
        pass
    # lone surrogates: what Python makes of bytes that are not UTF-8 (argv, and stdin read with
    # surrogateescape, give U+DC80..U+DCFF, one per byte), and what a JSON "\ud800" escape can carry
    fixed = unsurrogate(text)
    n = sum(a != b for a, b in zip(text, fixed))  # (one character each way: the lengths are equal)
    what = "byte" if n == 1 else "bytes"
    return fixed, f"the prompt was not valid UTF-8: {n} undecodable {what} replaced with U+FFFD (\ufffd)"


def _shares_tokenizer(base, tuned) -> bool:
    """The same tokenizer, or a char tokenizer `train --from` extended with characters at the end."""
    if base.to_dict() == tuned.to_dict():
        return True
    if base.kind != "char" or tuned.kind != "char" or base.vocab_size > tuned.vocab_size:
        return False
    return all(base.decode([i]) == tuned.decode([i]) for i in range(base.vocab_size))


class Generating:
    """The generation half of the service (mixed into ContinuationService, which holds `store`,
    `executor`, `device`, `default_model` and the model cache)."""

    _models: dict[tuple[str, int], object]
    _load_lock: threading.Lock
    _newest: tuple | None  # (the model folders' stamps, the newest model's name)
    _defaults: dict  # (name, version) -> (the card's stamp, its defaults)
    _resolved: dict  # spec -> (its model folder's stamp, (name, version))
    _rows: GroupCommit  # finished requests' rows, written together (rows.py)
    _storable_at: float = float("-inf")  # when the spool was last found writable
    model_defaults: Callable[[str, int], dict]  # (style.py)

    # ---- models -------------------------------------------------------------------------------------
    def resolve(self, spec: str | None) -> tuple[str, int]:
        spec = spec or self.default_model or self._newest_model()
        try:  # a model's versions are listed again only when its folder changed (a version published or removed)
            stamp = (models_dir() / registry.parse_spec(spec)[0]).stat().st_mtime_ns
        except (OSError, GhostwriteError):
            return registry.resolve(spec)  # (which says what is wrong)
        hit = self._resolved.get(spec)
        if hit is None or hit[0] != stamp:
            hit = self._resolved[spec] = (stamp, registry.resolve(spec))
        return hit[1]

    def _newest_model(self) -> str:
        """The most recently created model (no model asked for, no default set). Its cards are read again
        only when a model folder changed (published, removed): one stat per model instead of every card
        on every request."""
        root = models_dir()
        try:
            key = tuple(sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(root) if e.is_dir()))
        except OSError:
            key = None
        cached = self._newest
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        cards = registry.list_models()
        if not cards:
            raise GhostwriteError("no models yet: train one with `ghostwrite train CORPUS`")
        name = max(cards, key=lambda c: c.get("created", ""))["name"]
        self._newest = (key, name)
        return name

    def _card_defaults(self, name: str, version: int) -> dict:
        """`model_defaults`, read again only when the card file changed (a style sweep rewrites it)."""
        path = registry.model_dir(name, version) / "card.json"
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            stamp = None
        hit = self._defaults.get((name, version))
        if stamp is None or hit is None or hit[0] != stamp:
            hit = self._defaults[(name, version)] = (stamp, self.model_defaults(name, version))
        return dict(hit[1])

    def model(self, spec: str | None):
        """The loaded model for `spec` (newest version unless pinned), loaded once and shared."""
        return self.load_model(*self.resolve(spec))

    def load_model(self, name: str, version: int):
        """The loaded model `name@v{version}` (already resolved), loaded once and shared."""
        key = (name, version)
        with self._load_lock:
            lm = self._models.get(key)
            if lm is None:
                lm = generator.load(f"{name}@v{version}", device=self.device)
                for old in [k for k in self._models if k[0] == name and k[1] < version]:
                    del self._models[old]  # requests still using it keep their own reference
                self._models[key] = lm
            return lm

    def background(self, lm) -> tuple[object | None, str | None]:
        """The model `lm` was fine-tuned from (`ghostwrite train --from`), loaded, for style strength; or
        None and a note saying why style strength was left off."""
        name, version = lm.card.get("base_model"), lm.card.get("base_version")
        if not name:
            return None, "style strength needs a model fine-tuned from another (ghostwrite train --from): left off"
        try:
            bg = self.load_model(name, int(version)) if version is not None else self.model(name)
        except (GhostwriteError, ValueError, TypeError) as e:
            return None, f"style strength left off: its base model {name} cannot be loaded ({e})"
        if not _shares_tokenizer(bg.tokenizer, lm.tokenizer):
            return None, f"style strength left off: {bg.spec} does not share the model's tokenizer"
        return bg, None

    def warm_up(self, spec: str | None = None) -> None:
        """Open the store and load the model now (migrations, importing torch and the weights take
        seconds), not on the first request."""
        self.store  # noqa: B018 - opened (and migrated) here
        self.model(spec)

    def validate(self, request: Request) -> SamplingSettings:
        """The request's door: its text made valid (clean_text; the note kept on the request for the
        frontend to show), then the prompt's length and the sampling settings checked."""
        request.prompt, note = clean_text(request.prompt)
        request.input_note = note or request.input_note
        check_prompt(request.prompt, story=request.story is not None)
        return SamplingSettings.from_dict(request.settings)

    def prepare(self, request: Request | Prepared) -> Prepared:
        """The door, passed once: validated (see `validate`) and the model resolved to one version.
        A `Prepared` request streams without being checked again."""
        if isinstance(request, Prepared):
            return request
        settings = self.validate(request)
        name, version = self.resolve(request.model)
        defaults = self._card_defaults(name, version)  # the card's best settings (a style sweep's), under the request's
        given = {k for k in request.settings} | {s.name for s in SETTINGS if s.label in request.settings}
        if any(k not in given for k in defaults):
            settings = SamplingSettings.from_dict({**{k: v for k, v in defaults.items() if k not in given},
                                                   **request.settings})
        return Prepared(request, settings, name, version)

    # ---- running ------------------------------------------------------------------------------------
    def stream(self, request: Request | Prepared, cancel: threading.Event | None = None) -> Stream:
        return Stream(self, self.prepare(request), cancel or threading.Event())

    def run(self, request: Request | Prepared, cancel: threading.Event | None = None) -> Result:
        s = self.stream(request, cancel)
        for _ in s:
            pass
        assert s.result is not None
        return s.result

    def astream(self, request: Request | Prepared) -> AsyncStream:
        """Streamed to an event loop through the bridge (bridge.py); the work runs on `executor`."""
        return AsyncStream(self.executor, lambda cancel: self.stream(request, cancel))

    async def arun(self, request: Request | Prepared) -> Result:
        s = self.astream(request)
        async for _ in s:
            pass
        assert s.result is not None
        return s.result

    # ---- storing ------------------------------------------------------------------------------------
    @property
    def spool(self):
        """Where rows wait while the database can't take them (bot/store/spool.py)."""
        from bot.store.spool import Spool

        return Spool(home())

    def check_storable(self) -> None:
        """Before generating: the row must have somewhere to go, the spool or else the database. When
        neither can be written, say so (one line) instead of generating text that would be lost. A spool
        found writable is taken as writable for STORABLE_TTL_S (the probe makes and removes a file: ~8%
        of 16 concurrent requests' time); a row that finds it gone then is kept as `_record_one` says."""
        if time.monotonic() - self._storable_at < STORABLE_TTL_S:
            return
        problem = self.spool.unwritable()
        if problem is None:
            self._storable_at = time.monotonic()
            return
        try:
            self.store.check_writable()
        except GhostwriteError as e:
            raise GhostwriteError(f"nothing can be stored, so nothing was generated: {e}; and {problem}") from None

    def _record(self, fields: dict) -> tuple[int | None, str | None]:
        """Write one finished generation: with the rows of the requests that finish at the same time, in
        one transaction (rows.py: group commit), after the spooled ones. Every row gets a request key,
        so that writing it twice (a spooled row flushed again) stores it once."""
        fields = {**fields, "request_key": fields.get("request_key") or uuid.uuid4().hex}
        fields = self.private_fields(fields)  # metadata only: no text to the database or the spool
        return self._rows.write(fields)

    def _record_batch(self, rows: list[dict]) -> list[tuple[int | None, str | None]]:
        """Several rows in one transaction; when that fails (a row refused, the database down), each row
        on its own (`_record_one`), so one bad row neither sinks nor delays the others' fate."""
        if len(rows) > 1:
            try:
                store = self.store
                self.spool.flush(store)
                return [(gid, None) for gid in store.record_generations(rows)]
            except GhostwriteError:
                pass
        return [self._record_one(fields) for fields in rows]

    def _record_one(self, fields: dict) -> tuple[int | None, str | None]:
        """Write one finished generation (after the spooled ones). If the database fails, spool it and
        say why; a row the database refuses for what it holds is set aside, never retried."""
        from bot.store.db import InvalidRecord
        from bot.store.spool import store_row

        spool = self.spool
        try:
            store = self.store
            spool.flush(store)
            return store_row(store, fields), None
        except InvalidRecord as e:
            try:
                where = spool.set_aside(fields, str(e))
            except OSError as oe:
                log.error("generation not stored (%s) and not kept: %s", e, oe.strerror or oe)
                return None, f"{e}; and it could not be kept in {spool.folder}: {oe.strerror or oe}"
            return None, f"{e} (set aside in {where.parent}; it will not be retried)"
        except GhostwriteError as e:
            try:
                spool.put(fields)
            except OSError as oe:
                log.error("generation not stored (%s) and not kept: %s", e, oe.strerror or oe)
                return None, f"{e}; and it could not be kept in {spool.folder}: {oe.strerror or oe}"
            log.warning("generation not stored (%s); kept in %s", e, spool.folder)
            return None, f"{e} (kept in {spool.folder.name}/; it will be stored when the database works)"

    def flush_spool(self) -> int:
        """Write spooled generations to the store (see bot/store/spool.py); returns how many. If the
        database is still down, the rows stay and its error is raised."""
        return self.spool.flush(self.store)


class Stream:
    """A blocking stream of text pieces; `.result` once it has ended (or been closed). Made by
    `svc.stream(request)`, from a request that passed the door once (`Prepared`)."""

    def __init__(self, svc: Generating, prepared: Prepared, cancel: threading.Event):
        self.svc, self.request, self.cancel = svc, prepared.request, cancel
        self.result: Result | None = None
        self.logprobs: list | None = None  # when the request asks for logprobs: one entry per token (request.py)
        self.wake_interval: float | None = None  # how often the engine may wake this reader (bridge.py sets it)
        self._t0 = time.monotonic()
        self.settings = prepared.settings  # checked once, by svc.prepare
        self.lm = svc.load_model(prepared.model, prepared.version)
        svc.check_storable()  # before any text exists: a generation nothing can keep is refused
        self._gen = self._run()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._gen)

    def close(self) -> None:
        self.cancel.set()
        self._gen.close()

    def _run(self):
        lm, req = self.lm, self.request
        # batched with every other request on this model (one forward step per token for all of them);
        # the same text as lm.generate for the same seed
        gen = lm.serve(req.prompt, self.settings, logprobs=req.logprobs, story=req.story)
        if self.settings.style_strength > 0:  # against the model it was fine-tuned from (issue 12)
            bg, note = self.svc.background(lm)
            if bg is not None:
                gen.contrast(bg.runner, self.settings.style_strength)
            else:
                gen.note = note
        self.svc._rows.begin()  # its row will come (finally: _finish), the store's writer may wait for it
        self.logprobs = gen.logprobs  # (text, log-probability, alternatives) per token, when asked for
        if self.wake_interval is not None and hasattr(gen, "wake_interval"):
            gen.wake_interval = self.wake_interval
        status, error, text = "complete", None, []
        try:
            for piece in gen:
                text.append(piece)
                yield piece
                if self.cancel.is_set():
                    status = "interrupted"
                    break
        except (GeneratorExit, KeyboardInterrupt):
            status = "interrupted"  # stored as such in `finally`, then the interrupt goes on up
            raise
        except GhostwriteError as e:
            status, error = "error", str(e)
        except Exception as e:  # a bug must not lose the request: store it as an error, then re-raise
            status, error = "error", f"{type(e).__name__}: {e}"
            log.exception("generation failed")
        finally:
            gen.close()
            self._finish("".join(text), status, error, gen)

    def _finish(self, text: str, status: str, error: str | None, gen) -> None:
        req, lm = self.request, self.lm
        settings = {**self.settings.to_dict(), "seed": gen.seed}
        latency = int((time.monotonic() - self._t0) * 1000)
        if status == "complete":
            reason = getattr(gen, "finish_reason", None) or "length"
        else:
            reason = status  # interrupted | error
        note = getattr(gen, "note", None)
        # (a story's row keeps the end of its text, as much as a plain prompt primes: the turns before
        # are rows of their own, and a long story stored whole on every turn would grow as its square)
        prompt = req.prompt if req.story is None else req.prompt[-CONTEXT_CHARS:]
        fields = dict(model=lm.name, model_version=lm.version, prompt=prompt, output=text, status=status,
                      error=error, source=req.source, params=settings, user_id=req.user_id, user_name=req.user_name,
                      guild_id=req.guild_id, channel_id=req.channel_id, tokens_in=gen.tokens_in,
                      tokens_out=gen.tokens_out, latency_ms=latency, parent_id=req.parent_id, finish_reason=reason)
        gid, store_error = self.svc._record(fields)
        self.result = Result(gid, text, status, error, lm.name, lm.version, gen.tokens_in, gen.tokens_out,
                             latency, settings, store_error, finish_reason=reason, note=note)
