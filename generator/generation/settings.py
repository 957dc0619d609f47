"""The settings contract: every sampling setting declared ONCE (`SETTINGS`), and the service's limits.

A `Setting` says a setting's name, type, default, bounds (inclusive unless marked open; `length`'s cap
depends on the unit), choices, help text, spellings (the REPL's short names, the CLI's one-letter flag)
and how it is shown (the REPL's settings line, the Discord footer). Everything else is derived from the
declarations: `SamplingSettings` (its fields, defaults and validation), the CLI options of `generate`,
the REPL's `/set`, the Discord `/continue` options and `/settings` keys, the footer and `json_schema()`
for an API. Adding a setting is adding its `Setting` here and using it in the sampler (sampling.py).

No torch here: frontends validate settings without loading it. Settings are plain data (JSON-able) so the
service can store them with every generation.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import GhostwriteError

# ---- the service's limits (frontends read them from bot.service, never guess them) -------------------
MAX_PROMPT_CHARS = 20_000  # the longest prompt accepted; longer input is refused, not cut
# How much of a prompt primes the model: the generator primes on the last CONTEXT_CHARS characters, so a
# story (REPL or Discord) sends as much of its end and no more. 4,000: what the generator has always primed
# on (the REPL sent 4,000, Discord's /story only 2,000 of it).
CONTEXT_CHARS = 4_000
# A story's whole text (a request with a story key primes all of it: its state is carried over from turn to
# turn, stories.py). A bound only on what a re-prime after an edit or a restart costs: ~25 s on 2 cores.
MAX_STORY_CHARS = 500_000
MAX_TOKENS = 20_000  # a hard cap on the tokens one generation may take, whatever the unit
UNITS = ("tokens", "chars", "words", "sentences", "paragraphs")
MAX_LENGTH = {"tokens": 10_000, "chars": 20_000, "words": 4_000, "sentences": 200, "paragraphs": 50}


@dataclass(frozen=True, eq=False)
class Setting:
    """One setting, declared once. Bounds are inclusive unless `low_open` / `high_open`; None: no bound."""

    name: str
    type: type  # float, int or str
    default: Any
    help: str  # one short line (a Discord option description adds the default: keep it under ~70 chars)
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    per_unit: Mapping[str, int] | None = None  # the cap depends on the unit (`high` is the largest)
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is a value too (seed: None = a random seed)
    meaning: Mapping[Any, str] = field(default_factory=dict)  # words for special values: {0: "greedy"}
    label: str = ""  # the name the REPL shows and /set takes besides `name` ("penalty"); default: name
    aliases: tuple[str, ...] = ()  # more /set spellings ("t", "temp")
    short_flag: str | None = None  # the CLI's one-letter flag; the long one is --name-with-dashes
    line: str | None = None  # the REPL's settings line: a format of (value, **settings); None: not shown
    footer: str | None = None  # the Discord footer's piece, the same way; not shown for None or an "off" value
    server: bool = True  # may be a server/channel default (/settings) and is kept by the Retry button
    many: bool = False  # a list of texts (`type` is str): repeatable on the CLI, `a | b` as one text elsewhere
    item: str = ""  # a list item's form: "" any non-empty text, "bias" TEXT=NUMBER

    @property
    def shown_name(self) -> str:
        return self.label or self.name

    @property
    def flags(self) -> tuple[str, ...]:
        """The CLI's flags: --top-k (and -k where declared)."""
        return ("--" + self.name.replace("_", "-"),) + ((self.short_flag,) if self.short_flag else ())

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every name /set takes, lower case: name, name-with-dashes, namewithout, label, aliases."""
        out: list[str] = []
        for w in (self.name, self.name.replace("_", "-"), self.name.replace("_", ""), self.label, *self.aliases):
            if w and w.lower() not in out:
                out.append(w.lower())
        return tuple(out)

    def cap(self, unit: str | None = None) -> float | None:
        """The upper bound; for a per-unit setting, the one of `unit` (the largest when unit is None)."""
        if self.per_unit is not None and unit in self.per_unit:
            return self.per_unit[unit]  # type: ignore[index]
        return self.high

    def word(self, value: Any) -> str | None:
        """What a special value means (`greedy`, `off`, `random`), or None."""
        try:
            return self.meaning.get(value)
        except TypeError:  # an unhashable value (a list from a JSON row) means nothing special
            return None

    def is_off(self, value: Any) -> bool:
        return value is None or self.word(value) == "off"

    def bounds_text(self, unit: str | None = None) -> str:
        """`between 0 and 10` / `in (0, 1]` / `at least 0`, as the error messages say it."""
        lo, hi = self.low, self.cap(unit)
        num = (lambda x: f"{x:,}") if self.type is int else (lambda x: f"{x:g}")
        tail = f" {unit}" if self.per_unit is not None and unit else ""
        if lo is not None and hi is not None:
            if not self.low_open and not self.high_open:
                return f"between {num(lo)} and {num(hi)}{tail}"
            return f"in {'(' if self.low_open else '['}{num(lo)}, {num(hi)}{']' if not self.high_open else ')'}{tail}"
        if lo is not None:
            return f"{'above' if self.low_open else 'at least'} {num(lo)}"
        if hi is not None:
            return f"{'below' if self.high_open else 'at most'} {num(hi)}"
        return "any number"

    def check(self, value: Any, unit: str | None = None) -> Any:
        """`value` made this setting's type and checked against its bounds (a per-unit cap against
        `unit`'s); a bad value raises GhostwriteError with one line."""
        if value is None and self.optional:
            return None
        if self.many:
            return self._check_list(value)
        if self.type is str and not self.choices:
            if not isinstance(value, str) or len(value) > MAX_ITEM_CHARS:
                raise GhostwriteError(f"{self.name} must be a text of at most {MAX_ITEM_CHARS} characters, "
                                      f"got {_shown(value)}")
            return unescape(value)
        if self.choices:
            if value not in self.choices:
                raise GhostwriteError(f"{self.name} must be one of {', '.join(self.choices)}, got {_shown(value)}")
            return value
        try:
            if isinstance(value, bool) or value is None:
                raise ValueError
            v = self.type(value)
        except (TypeError, ValueError, OverflowError):
            what = "a whole number" if self.type is int else "a number"
            raise GhostwriteError(f"{self.name} must be {what}, got {_shown(value)}") from None
        lo, hi = self.low, self.cap(unit)
        if (isinstance(v, float) and math.isnan(v)) or \
                (lo is not None and (v <= lo if self.low_open else v < lo)) or \
                (hi is not None and (v >= hi if self.high_open else v > hi)):
            meaning = [f"{_num(k)} = {w}" for k, w in self.meaning.items() if k is not None]
            note = f" ({', '.join(meaning)})" if meaning else ""
            raise GhostwriteError(f"{self.name} must be {self.bounds_text(unit)}{note}, got {_num(v)}")
        return v

    def _check_list(self, value: Any) -> list[str]:
        """A list setting's value: a list of texts, or one text of items separated by ` | ` (the REPL and
        Discord), each with `\\n` for a newline; every item non-empty, at most MAX_ITEMS of them."""
        if isinstance(value, str):
            value = [v for v in (x.strip(" ") for x in value.split(" | ")) if v] if value.strip() else []
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise GhostwriteError(f"{self.name} must be a list of texts, got {_shown(value)}")
        items = [unescape(v) for v in value]
        if any(not v for v in items):
            raise GhostwriteError(f"{self.name} must not hold an empty text")
        if len(items) > MAX_ITEMS or any(len(v) > MAX_ITEM_CHARS for v in items):
            raise GhostwriteError(f"{self.name} takes at most {MAX_ITEMS} texts of at most {MAX_ITEM_CHARS} "
                                  f"characters, got {len(items)}")
        if self.item == "bias":
            for v in items:
                parse_bias(v)
        return items

    def show(self, template: str | None, values: Mapping[str, Any]) -> str | None:
        """This setting's piece of a settings line: `template` formatted with its value (a word such as
        `random` standing for None) and the other settings, then what a special value means: `(greedy)`."""
        if template is None:
            return None
        v = values.get(self.name, self.default)
        if self.many or (self.type is str and not self.choices):
            if not v or v == self.default:
                return None
            items = [v] if isinstance(v, str) else list(v)
            return template.format(" | ".join(x.encode("unicode_escape").decode("ascii") for x in items))
        if v is None:
            return f"{self.shown_name} {self.word(None) or 'none'}"
        try:
            v = self.type(v)
            text = template.format(v, **values)
        except (TypeError, ValueError, OverflowError, KeyError):  # a stored value of the wrong type
            return f"{self.shown_name} {_shown(v)}"
        word = self.word(v)
        return f"{text} ({word})" if word else text


MAX_ITEMS, MAX_ITEM_CHARS = 32, 200  # a list setting's items (stop, ban, bias) and any text setting


def unescape(text: str) -> str:
    """`\\n` and `\\t` typed in a text setting (a stop string, DRY's breakers) made the characters."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def parse_bias(item: str) -> tuple[str, float]:
    """`thee=+2` → ("thee", 2.0): a text and what to add to its logit (between -100 and 100)."""
    text, eq, num = item.rpartition("=")
    try:
        if not eq or not text:
            raise ValueError
        value = float(num)
        if not -100 <= value <= 100:
            raise ValueError
    except ValueError:
        raise GhostwriteError(f"bias must be TEXT=NUMBER with NUMBER between -100 and 100, got {_shown(item)}") from None
    return text, value


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _shown(value: Any) -> str:
    r = repr(value)
    return r if len(r) <= 40 else r[:37] + "..."


SETTINGS: tuple[Setting, ...] = (
    Setting("length", int, 200, "How much to write, counted in the unit",
            low=1, high=max(MAX_LENGTH.values()), per_unit=MAX_LENGTH, aliases=("len", "n"), short_flag="-l",
            line="length {:,} {unit}", footer="{} {unit}"),
    Setting("unit", str, "chars", "What length counts", choices=UNITS, aliases=("units",), short_flag="-u"),
    Setting("temperature", float, 0.8, "Higher is wilder, lower is safer; 0 = greedy (always the likeliest)",
            low=0, high=10, meaning={0: "greedy"}, aliases=("temp", "t"), short_flag="-t",
            line="temperature {:g}", footer="temp {:g}"),
    Setting("top_k", int, 0, "Sample from the k likeliest tokens only (0 = off)",
            low=0, meaning={0: "off"}, aliases=("k",), line="top_k {}", footer="top-k {}"),
    Setting("top_p", float, 1.0, "Sample from the likeliest tokens that make up p of the probability",
            low=0, high=1, low_open=True, meaning={1: "off"}, aliases=("p",), line="top_p {:g}", footer="top-p {:g}"),
    Setting("min_p", float, 0.0, "Drop the tokens less likely than min_p × the likeliest one (0 = off)",
            low=0, high=1, meaning={0: "off"}, line="min_p {:g}", footer="min-p {:g}"),
    Setting("repetition_penalty", float, 1.0, "Above 1 makes the recent tokens less likely again (1 = off)",
            low=0, high=10, low_open=True, meaning={1: "off"}, label="penalty", aliases=("rep",),
            line="penalty {:g}", footer="penalty {:g}"),
    Setting("dry_multiplier", float, 0.0, "DRY: how hard to push away from repeating a passage (0 = off)",
            low=0, high=5, meaning={0: "off"}, aliases=("dry",), line="dry {:g}", footer="dry {:g}"),
    Setting("dry_base", float, 1.75, "DRY: how fast its penalty grows with the repeat's length",
            low=1, high=4, low_open=True, aliases=("dry-base",), line=None),
    Setting("dry_allowed_length", int, 2, "DRY: the longest repeat left alone (in tokens; characters for char)",
            low=1, high=50, aliases=("dry-allowed",), line=None),
    Setting("dry_breakers", str, "\n.!?。！？", "DRY: characters a repeat does not run across",
            aliases=("breakers",), line="breakers {}"),
    Setting("style_strength", float, 0.0, "Push away from the base model: a + s(a - base) (fine-tuned models; 0 = off)",
            low=0, high=5, meaning={0: "off"}, aliases=("style",), line="style {:g}"),
    Setting("stop", str, [], "End the text before this string (repeatable)", many=True,
            line="stop {}", server=True),
    Setting("ban", str, [], "Never write this string (repeatable)", many=True, line="ban {}"),
    Setting("bias", str, [], "Make a token or string likelier: TEXT=NUMBER, e.g. thee=+2 (repeatable)",
            many=True, item="bias", line="bias {}"),
    Setting("seed", int, None, "Same seed and settings → same text",
            low=0, high=2**63 - 1, optional=True, meaning={None: "random"}, line="seed {}", server=False),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
# The defaults measured best for each kind of tokenizer (bench/samplers.py's sweep; README "Samplers"). The
# service puts them under a model card's own choice (`style.defaults`, a style sweep's), which it puts under
# a request's own settings: whatever a user sets explicitly wins. Checked against SETTINGS like any value.
# Measured (README "Samplers"): min-p 0.05 raised an sp model's attribution margin at temperature 0.8 and
# lowered the char models'; DRY took greedy loops from 100% to 0% on every model but changed nothing
# measurable at 0.8 and costs more than the 15% of speed allowed (0.69-0.76), so it stays a choice (set it
# when lowering the temperature); the repetition penalty stays off (it leaves char loops as they are).
TOKENIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "char": {},
    "word": {},  # not measured: the contract's own defaults
    "sp": {"min_p": 0.05},
}
# validation order: a setting whose cap depends on the unit after the unit
_CHECK_ORDER = sorted(SETTINGS, key=lambda s: s.per_unit is not None)


def lookup(word: str) -> Setting | None:
    """The setting one of its spellings names (`t`, `top-k`, `penalty`), or None."""
    w = word.lower()
    for s in SETTINGS:
        if w in s.spellings:
            return s
    return None


class SamplingSettings:
    """One request's sampling settings: an attribute per `Setting` (defaults from the declarations).
    `validate()` makes each value its type and checks it against its bounds; `from_dict` does both."""

    __slots__ = tuple(s.name for s in SETTINGS)

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            near = difflib.get_close_matches(str(unknown[0]), list(BY_NAME), 1)
            hint = f"did you mean {near[0]!r}?" if near else "settings: " + " ".join(sorted(s.shown_name for s in SETTINGS))
            raise GhostwriteError(f"unknown sampling setting {_shown(unknown[0])} ({hint})")
        for s in SETTINGS:
            v = values.get(s.name, s.default)
            object.__setattr__(self, s.name, list(v) if s.many and isinstance(v, (list, tuple)) else v)

    def __getattr__(self, name: str) -> Any:  # (only for a missing name: tells type checkers the fields are Any)
        raise AttributeError(name)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> SamplingSettings:
        d = dict(d or {})
        for s in SETTINGS:  # the label spelling (`penalty`) is accepted for the name
            if s.label and s.label in d and s.name not in d:
                d[s.name] = d.pop(s.label)
        return cls(**d).validate()

    def to_dict(self) -> dict:
        return {s.name: getattr(self, s.name) for s in SETTINGS}

    def validate(self) -> SamplingSettings:
        for s in _CHECK_ORDER:
            setattr(self, s.name, s.check(getattr(self, s.name), unit=getattr(self, "unit", None)))
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SamplingSettings) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "SamplingSettings(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"


def check_prompt(prompt: str, story: bool = False) -> str:
    """A prompt, or with `story` a story's whole text (MAX_STORY_CHARS), checked: one line if refused."""
    if not isinstance(prompt, str):
        raise GhostwriteError("prompt must be text")
    limit, what = (MAX_STORY_CHARS, "story") if story else (MAX_PROMPT_CHARS, "prompt")
    if len(prompt) > limit:
        raise GhostwriteError(f"{what} too long: {len(prompt):,} characters (the limit is {limit:,})")
    return prompt


# ---- derived descriptions ---------------------------------------------------------------------------
def settings_line(values: Mapping[str, Any]) -> str:
    """`temperature 0.8 · top_k 0 (off) · … · length 200 chars · seed random` (the REPL's /set)."""
    full = {**{s.name: s.default for s in SETTINGS}, **values}
    parts = [s.show(s.line, full) for s in SETTINGS]
    return " · ".join(p for p in parts if p)


def footer_parts(values: Mapping[str, Any]) -> list[str]:
    """The settings in a reply's footer: `temp 0.8`, `top-k 40`, `200 chars` (off values left out)."""
    full = {**{s.name: s.default for s in SETTINGS}, **{k: v for k, v in values.items() if v is not None}}
    parts = []
    for s in SETTINGS:
        if s.footer is not None and s.name in values and not s.is_off(full.get(s.name)):
            parts.append(s.show(s.footer, full))
    return [p for p in parts if p]


def json_schema() -> dict:
    """A JSON-Schema description of the settings object (for an OpenAI-style API)."""
    props: dict[str, dict] = {}
    for s in SETTINGS:
        p: dict[str, Any] = {"description": s.help, "default": s.default}
        if s.choices:
            p["type"], p["enum"] = "string", list(s.choices)
        elif s.many:
            p["type"], p["items"], p["default"] = "array", {"type": "string", "minLength": 1}, []
            p["maxItems"] = MAX_ITEMS
        elif s.type is str:
            p["type"], p["maxLength"] = "string", MAX_ITEM_CHARS
        else:
            p["type"] = "integer" if s.type is int else "number"
            if s.low is not None:
                p["exclusiveMinimum" if s.low_open else "minimum"] = s.low
            if s.high is not None:
                p["exclusiveMaximum" if s.high_open else "maximum"] = s.high
        if s.per_unit is not None:
            p["description"] += " (at most " + ", ".join(f"{n:,} {u}" for u, n in s.per_unit.items()) + ")"
        if s.optional:
            p["type"] = [p["type"], "null"]
        props[s.name] = p
    return {"type": "object", "properties": props, "additionalProperties": False}
