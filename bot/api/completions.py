"""`POST /v1/completions`: a body (body.py) → prepared requests (validated once, by the service, on a
worker thread) → a place in the gate (guard.py: 429 beyond the queue) → the service's async streams,
which share the model's batching engine with every other request. Answered whole, or as server-sent
events (sse.py) ending with `data: [DONE]`; a client that leaves mid-stream stops its generations, stored
`interrupted` with what was written. Nothing is stored for a request refused before it ran."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from anyio import to_thread
from fastapi import Request
from fastapi.responses import JSONResponse

from bot.service import GhostwriteError, Prepared

from . import body as bodies
from .errors import ApiError, error_body
from .sse import DONE, EventStream, event


async def _read(request: Request) -> dict:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None


def _prepare_all(svc, completion: bodies.Completion) -> list[Prepared]:
    """On a worker thread: the model resolved (404 when unknown) and every request through the door."""
    try:
        name, version = svc.resolve(completion.model)
    except GhostwriteError as e:
        raise ApiError(404, str(e), "model_not_found", "model") from None
    out = []
    for r in completion.requests:
        r.model = f"{name}@v{version}"
        try:
            out.append(svc.prepare(r))
        except GhostwriteError as e:
            raise ApiError(400, str(e), "invalid_settings") from None
    return out


class Choice:
    """One choice's progress: text delivered and the logprobs entries that cover it."""

    def __init__(self, index: int, stream, prompt: str, echo: bool):
        self.index, self.stream, self.prompt, self.echo = index, stream, prompt, echo
        self.delivered = 0  # characters of the continuation sent
        self.lp_used = 0
        self.lp_chars = 0

    def logprobs(self, final: bool = False) -> dict | None:
        """The logprobs object for the tokens whose text has been delivered since the last call. `final`:
        the text has ended, so the token it ends inside (a stop string's cut) is cut to it and any after
        it are left out: the tokens join to the text."""
        source = self.stream.source
        entries = getattr(source, "logprobs", None)
        if entries is None:
            return None
        taken = []
        while self.lp_used < len(entries):
            text, lp, top = entries[self.lp_used]
            room = self.delivered - self.lp_chars
            if final and room <= 0:
                break  # tokens past the text's end (a stop string)
            if len(text) > room:
                if not final:
                    break
                text = text[:room]
            taken.append((text, lp, top))
            self.lp_chars += len(text)
            self.lp_used += 1
        offset = (len(self.prompt) if self.echo else 0) + self.lp_chars - sum(len(e[0]) for e in taken)
        return bodies.logprobs_block(taken, offset)


def _usage(results) -> dict:
    prompt = sum(r.tokens_in for r in results)
    out = sum(r.tokens_out for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}


def _finish(result) -> str:
    """OpenAI's finish_reason: the service's (length | stop | interrupted | error)."""
    return result.finish_reason or ("length" if result.status == "complete" else result.status)


async def complete(request: Request, who: str | None):
    svc, gate = request.app.state.svc, request.app.state.gate
    completion = bodies.parse(await _read(request), who, request.app.state.config.lenient)
    prepared = await to_thread.run_sync(_prepare_all, svc, completion)
    model = completion.model or f"{prepared[0].model}"
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": model}
    started = await gate.enter(len(prepared))
    try:
        streams = [svc.astream(p) for p in prepared]
        choices = [Choice(i, s, p.request.prompt, completion.echo) for i, (s, p) in enumerate(zip(streams, prepared))]
    except BaseException:
        gate.leave(started, len(prepared))
        raise
    if completion.stream:
        released = False

        def release() -> None:  # once: by the event stream's end, or by the response if it never began
            nonlocal released
            if not released:
                released = True
                gate.leave(started, len(prepared))

        merged = Merged(choices)
        try:
            # the first piece before the answer's status: what stops every generation before it writes
            # (nothing can be stored, a model file gone) is an HTTP error, not a 200 with an error event
            first = await merged.queue.get()
            if isinstance(first[1], GhostwriteError):
                raise ApiError(503, str(first[1]), "unavailable")
        except BaseException:
            await merged.stop()
            release()
            raise
        return EventStream(_events(head, choices, completion, release, merged, first), on_close=release)
    try:
        results = await _drain_all(request, choices)
    finally:
        gate.leave(started, len(prepared))
    failed = next((r for r in results if r.status == "error"), None)
    if failed is not None:
        raise ApiError(500, failed.error or "generation failed", "generation_failed")
    out = []
    for c, r in zip(choices, results):
        c.delivered = len(r.text)
        lp = c.logprobs(final=True) if completion.logprobs else None
        out.append({"text": (c.prompt if c.echo else "") + r.text, "index": c.index, "logprobs": lp,
                    "finish_reason": _finish(r), "generation_id": r.generation_id})
    return JSONResponse({**head, "choices": out, "usage": _usage(results)})


async def _drain_all(request: Request, choices: list[Choice]) -> list:
    """Every choice read to its end; a client that leaves meanwhile stops them (stored interrupted)."""
    work = asyncio.ensure_future(asyncio.gather(*(_drain(c) for c in choices)))
    try:
        while True:
            done, _ = await asyncio.wait({work}, timeout=0.25)
            if done:
                return work.result()
            if await request.is_disconnected():
                raise ApiError(499, "the client closed the connection", "client_closed")
    finally:
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)


async def _drain(choice: Choice):
    async for _ in choice.stream:
        pass
    return choice.stream.result


class Merged:
    """Every choice's stream read by a task of its own into one queue of (choice, piece | None at its end |
    the exception it raised)."""

    def __init__(self, choices: list[Choice]):
        self.queue: asyncio.Queue = asyncio.Queue()
        self.tasks = [asyncio.ensure_future(self._run(c)) for c in choices]

    async def _run(self, c: Choice) -> None:
        try:
            async for piece in c.stream:
                await self.queue.put((c, piece))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            await self.queue.put((c, e))
            return
        await self.queue.put((c, None))

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        # (each stream's own `finally` sets its cancel event; the worker stores the row interrupted)
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _events(head: dict, choices: list[Choice], completion: bodies.Completion, release, merged: Merged,
                  first: tuple):
    """The SSE body: pieces of every choice as they come (`first` already taken from `merged`), a last
    chunk per choice with its finish_reason, a usage chunk when asked, then [DONE]. Cancelled (the
    client left): every stream is closed."""

    def chunk(c: Choice, text: str, finish: str | None, lp: dict | None) -> str:
        return event({**head, "choices": [{"text": text, "index": c.index, "logprobs": lp, "finish_reason": finish}]})

    left = len(choices)
    item: tuple | None = first
    try:
        for c in choices:
            if c.echo:
                yield chunk(c, c.prompt, None, None)
        while left:
            c, piece = item if item is not None else await merged.queue.get()
            item = None
            if isinstance(piece, BaseException):
                left -= 1
                yield event(error_body(500, f"{type(piece).__name__}: {piece}", "generation_failed"))
                continue
            if piece is None:
                left -= 1
                r = c.stream.result
                if r is not None and r.status == "error":
                    yield event(error_body(500, r.error or "generation failed", "generation_failed"))
                    continue
                if r is not None:
                    c.delivered = len(r.text)
                lp = c.logprobs(final=True) if completion.logprobs else None
                tail = lp if lp and lp["tokens"] else None
                yield chunk(c, "", _finish(r) if r is not None else "length", tail)
                continue
            c.delivered += len(piece)
            yield chunk(c, piece, None, c.logprobs() if completion.logprobs else None)
        release()  # every generation has ended: the slots are free before the client hears [DONE]
        if completion.include_usage:
            results = [c.stream.result for c in choices if c.stream.result is not None]
            yield event({**head, "choices": [], "usage": _usage(results)})
        yield DONE
    finally:
        await merged.stop()
        release()
