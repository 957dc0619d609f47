"""The `llm` plugin (simonw/llm, on the model of llm-markov): every registered ghostwrite model as
`ghostwrite/NAME`, its options the settings contract's (`-o temperature 0.6 -o unit words -o length 20`),
streamed, and stored in ghostwrite's store with source `llm`. A frontend: it imports only bot.service;
the settings are checked by the service, once.

    llm -m ghostwrite/shakespeare "ROMEO:" -o length 2 -o unit sentences
    llm chat -m ghostwrite/shakespeare      # the story grows: each turn continues everything so far

Installed with the package (the `llm` entry point in pyproject.toml); listed by `llm plugins`."""

from __future__ import annotations

import threading
from typing import Optional, Union

import llm
from pydantic import Field, create_model

from bot.service import SETTINGS, ContinuationService, GhostwriteError, Request, Setting

_service: ContinuationService | None = None
_lock = threading.Lock()


def service() -> ContinuationService:
    global _service
    with _lock:
        if _service is None:
            _service = ContinuationService()
        return _service


def _annotation(s: Setting):
    if getattr(s, "many", False):
        return Optional[Union[list[str], str]]
    return Optional[s.type]  # (None: the contract's default; the service checks the value)


def _options() -> type[llm.Options]:
    """llm's Options model with one field per setting of the contract (type and help; no bounds or
    defaults restated: the service checks the values)."""
    fields = {s.name: (_annotation(s), Field(default=None, description=s.help)) for s in SETTINGS}
    return create_model("GhostwriteOptions", __base__=llm.Options, **fields)  # type: ignore[call-overload]


class Ghostwrite(llm.Model):
    can_stream = True
    Options = _options()

    def __init__(self, name: str):
        self.name = name
        self.model_id = f"ghostwrite/{name}"

    def __str__(self) -> str:
        return f"ghostwrite: {self.model_id}"

    def execute(self, prompt, stream, response, conversation):
        text = prompt.prompt or ""
        if conversation is not None:  # a chat: the story so far, then this turn
            past = "".join((r.prompt.prompt or "") + r.text_or_raise() for r in conversation.responses)
            text = past + text
        settings = {k: v for k, v in prompt.options.model_dump().items() if v is not None}
        svc = service()
        story = None
        if conversation is not None:  # the chat's story: whole, primed from the state its last turn left
            story = f"llm:{conversation.id}"
            text = text[-svc.max_story_chars:]
        req = Request(prompt=text, model=self.name, settings=settings, source="llm", story=story)
        try:
            st = svc.stream(req)
        except GhostwriteError as e:
            raise llm.ModelError(str(e)) from None
        try:
            yield from st
        finally:
            st.close()
        r = st.result
        if r is None:
            return
        if r.status == "error":
            raise llm.ModelError(r.error or "generation failed")
        response.response_json = {"generation_id": r.generation_id, "model": f"{r.model}@v{r.version}",
                                  "finish_reason": r.finish_reason, "settings": r.settings}
        if hasattr(response, "set_usage"):
            response.set_usage(input=r.tokens_in, output=r.tokens_out)


@llm.hookimpl
def register_models(register):
    try:
        cards = service().models()
    except GhostwriteError:
        return
    for name in sorted({c["name"] for c in cards}):
        register(Ghostwrite(name))
