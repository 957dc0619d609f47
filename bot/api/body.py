"""A `POST /v1/completions` body → the service's requests. OpenAI's own fields are read here; every other
field is a setting of the contract (bot.service.SETTINGS: temperature, top_p, seed, stop, and ghostwrite's
own unit, length, top_k, min_p, repetition_penalty…), passed to the service unchanged and validated there,
once (`svc.prepare`): a bad value is a 400 with the contract's own message, an unknown field a 400 naming
the settings. `max_tokens` is `length` counted in tokens (unless `length` / `unit` are given).

The request schema shown at /docs is derived from the contract too (`request_schema`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bot.service import Request, json_schema

from .errors import ApiError

MAX_LOGPROBS = 20  # alternatives per token (OpenAI allows 5; vLLM 20)
MAX_CHOICES = 16  # n × prompts per request: each is a generation in the shared batch
# OpenAI fields ghostwrite does not implement: accepted at their neutral values only
NEUTRAL = {"presence_penalty": (0, 0.0), "frequency_penalty": (0, 0.0), "suffix": ("",), "logit_bias": ({},),
           "best_of": (1,)}
OWN = {"model", "prompt", "stream", "stream_options", "n", "logprobs", "echo", "user", "max_tokens", "story"}
MAX_STORY_KEY = 100

OPENAI_FIELDS: dict[str, dict] = {
    "model": {"type": "string", "description": "NAME or NAME@vN (GET /v1/models)"},
    "prompt": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
               "description": "The text to continue (raw: no chat template)"},
    "max_tokens": {"type": ["integer", "null"], "description": "length in tokens (unless length/unit are given)"},
    "stream": {"type": "boolean", "default": False, "description": "Server-sent events, ending with [DONE]"},
    "stream_options": {"type": ["object", "null"], "description": "{\"include_usage\": true}: a last usage chunk"},
    "n": {"type": "integer", "default": 1, "minimum": 1, "description": "Continuations per prompt (seed + i each)"},
    "logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_LOGPROBS,
                 "description": "Alternatives per token, with each token's log-probability"},
    "echo": {"type": "boolean", "default": False, "description": "The prompt before the continuation"},
    "user": {"type": ["string", "null"], "description": "Who asks (stored with the generation)"},
    "story": {"type": ["string", "null"], "maxLength": MAX_STORY_KEY,
              "description": "ghostwrite: a story's key. The prompt is then the story's whole text (up to "
                             "max_story_chars), primed from the state its last turn left: only the new text "
                             "runs through the model"},
}


def request_schema() -> dict:
    """The body's JSON schema: OpenAI's fields, then the contract's settings (json_schema())."""
    contract = json_schema()
    props = {**OPENAI_FIELDS, **contract["properties"]}
    return {"type": "object", "required": ["prompt"], "properties": props}


@dataclass
class Completion:
    """What one body asks for: a request per choice (index = prompt × n + i), and how to answer."""

    model: str | None
    requests: list[Request]
    stream: bool
    echo: bool
    logprobs: int
    include_usage: bool


def _flag(body: dict, name: str) -> bool:
    v = body.get(name, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise ApiError(400, f"{name} must be true or false, got {v!r}", param=name)
    return v


def _count(body: dict, name: str, default: int, low: int, high: int) -> int:
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise ApiError(400, f"{name} must be a whole number between {low} and {high}, got {v!r}", param=name)
    return v


def parse(body: Any, caller: str | None, lenient: bool = False) -> Completion:
    """Read a completions body (already JSON); refuse what is not OpenAI's shape with a 400. Settings are
    only gathered here: the service checks them. `lenient` (serve --lenient): fields that are neither
    OpenAI's nor settings of the contract, and OpenAI's unsupported ones, are ignored instead of refused
    (what llama.cpp's server does: some clients send their own backend's fields)."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ApiError(400, "prompt must be text or a list of texts (token ids are not taken)", param="prompt")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, f"model must be a model name, got {model!r}", param="model")
    for name, neutral in NEUTRAL.items():
        v = body.get(name)
        if v is not None and v not in neutral and not lenient:
            raise ApiError(400, f"{name} is not supported by ghostwrite (leave it out)", param=name)
    n = _count(body, "n", 1, 1, MAX_CHOICES)
    if n * len(prompts) > MAX_CHOICES:
        raise ApiError(400, f"n × prompts must be at most {MAX_CHOICES}, got {n * len(prompts)}", param="n")
    logprobs = _count(body, "logprobs", 0, 0, MAX_LOGPROBS)
    stream, echo = _flag(body, "stream"), _flag(body, "echo")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "stream_options must be an object", param="stream_options")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise ApiError(400, f"user must be text, got {user!r}", param="user")
    story = body.get("story")
    if story is not None and (not isinstance(story, str) or not story or len(story) > MAX_STORY_KEY):
        raise ApiError(400, f"story must be a key of 1 to {MAX_STORY_KEY} characters, got {story!r}"[:200],
                       param="story")

    settings = {k: v for k, v in body.items() if k not in OWN and k not in NEUTRAL and v is not None
                and (not lenient or k in LIST_SETTINGS)}
    for k, v in settings.items():  # a list setting given one text (OpenAI's `"stop": "\n"`) is that one item
        if isinstance(v, str) and LIST_SETTINGS.get(k):
            settings[k] = [v]
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and "length" not in settings:
        settings["length"] = max_tokens
        settings.setdefault("unit", "tokens")
    seed = settings.get("seed")
    requests = []
    for p in prompts:
        for i in range(n):
            s = dict(settings)
            if n > 1 and isinstance(seed, int) and not isinstance(seed, bool):
                s["seed"] = seed + i  # as `ghostwrite generate -n`: sample i takes seed + i
            requests.append(Request(prompt=p, model=model, settings=s, source="api",
                                    user_id=caller or user, user_name=user, logprobs=logprobs,
                                    # (each caller's stories apart; n > 1 choices share the story's state)
                                    story=None if story is None else f"api:{caller or ''}:{story}"))
    return Completion(model, requests, stream, echo, logprobs, bool(options.get("include_usage")))


def logprobs_block(entries: list, offset: int) -> dict:
    """OpenAI's completions `logprobs` object for these token entries (text, logprob, alternatives),
    text offsets counted from `offset`."""
    tokens, token_lps, tops, offsets = [], [], [], []
    for text, lp, top in entries:
        tokens.append(text)
        token_lps.append(_finite(lp))
        d: dict[str, float | None] = {}
        for alt, v in top:
            d.setdefault(alt, _finite(v))
        tops.append(d)
        offsets.append(offset)
        offset += len(text)
    return {"tokens": tokens, "token_logprobs": token_lps, "top_logprobs": tops, "text_offset": offsets}


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None  # (-inf: a token the model cannot write; JSON has no -inf)


# the settings whose value is a list of texts (stop, ban…), as the contract's schema says
LIST_SETTINGS = {name: "array" in ([p.get("type")] if isinstance(p.get("type"), str) else p.get("type", []))
                 for name, p in json_schema()["properties"].items()}
