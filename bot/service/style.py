"""Style: attribution (whose is this text?) and a model's style report (does it sound like its author, and is
it its own?), through the one door. The work is the generator's (generator/style/); this part resolves the
model, keeps the figures in its card, and gives generation the card's best settings as the model's
defaults (a request's own settings always win)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from generator import registry
from generator.errors import GhostwriteError
from generator.generation.settings import BY_NAME, TOKENIZER_DEFAULTS, lookup

log = logging.getLogger("ghostwrite.service")


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """`temperature=0.5,0.7,0.9` → ("temperature", [0.5, 0.7, 0.9]): a setting of the contract (any of its
    spellings) and values checked against its bounds."""
    name, sep, values = (text or "").partition("=")
    s = lookup(name.strip()) if sep else None
    if s is None or s.name in ("length", "unit", "seed"):
        raise GhostwriteError(f"--sweep takes SETTING=V1,V2,... with a sampling setting (temperature, top_p, ...), "
                              f"got {text!r}")
    raw = [v.strip() for v in values.split(",") if v.strip()]
    if not raw or len(raw) > 20:
        raise GhostwriteError(f"--sweep needs 1 to 20 values of {s.name}, got {len(raw)}")
    return s.name, list(dict.fromkeys(s.check(v) for v in raw))


def parse_setting(text: str) -> tuple[str, Any]:
    """`temperature=0.7` (any spelling of a sampling setting) → ("temperature", 0.7), checked."""
    name, sep, value = (text or "").partition("=")
    s = lookup(name.strip()) if sep else None
    if s is None or s.name in ("length", "unit"):
        raise GhostwriteError(f"--set takes SETTING=VALUE with a sampling setting (temperature, top_p, ...), got {text!r}")
    return s.name, s.check(value.strip())


class Style:
    """Mixed into ContinuationService (which gives `resolve` and `load_model`)."""

    resolve: Callable[[str | None], tuple[str, int]]
    load_model: Callable[[str, int], Any]

    def attribute(self, text: str, among: Sequence[str] | None = None, force: bool = False) -> dict:
        """Bits per character of `text` under each candidate corpus's judge (best first), the winner and the
        margin over the runner-up. `among`: registered corpora (default: every one in the text's language);
        at least two, of one language unless `force`."""
        from generator.style.attribution import attribute

        return attribute(text, among, force)

    def style_report(self, spec: str | None, *, prompts: int | None = None, length: int | None = None,
                     settings: dict | Sequence[str] | None = None,
                     among: Sequence[str] | None = None, force: bool = False, sweep: str | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict:
        """The style report of a model (generator/style/report.py), one per value of `sweep`
        ("temperature=0.5,0.7"), with `settings` (a dict, or ["temperature=0.7", ...]) over the model's
        defaults; the figures (and a sweep's best settings) go into the model's card.
        Returns {"model", "reports", "best" (the best report's settings or None), "style" (the card's)}."""
        from generator.generation.settings import SamplingSettings
        from generator.style import report

        prompts = report.PROMPTS if prompts is None else prompts
        length = report.LENGTH if length is None else length
        if not isinstance(settings, dict):  # ["temperature=0.7", ...]
            settings = dict(parse_setting(x) for x in settings or ())
        if not 1 <= prompts <= 1000:
            raise GhostwriteError(f"--prompts must be between 1 and 1000, got {prompts}")
        if not 50 <= length <= 4000:
            raise GhostwriteError(f"--length must be between 50 and 4000 characters, got {length}")
        swept = parse_sweep(sweep) if sweep else None
        name, version = self.resolve(spec)
        lm = self.load_model(name, version)
        base = {**self.model_defaults(name, version), **(settings or {})}
        SamplingSettings.from_dict(base)  # bad settings: one line before any work
        panel = report.model_panel(lm.card, among, force)
        values = swept[1] if swept else [None]
        reports = []
        for v in values:
            s = dict(base) if swept is None else {**base, swept[0]: v}
            reports.append(report.style_report(lm, prompts=prompts, length=length, settings=s, panel=panel,
                                               progress=progress))
        chosen = report.best(reports)
        figures = report.card_figures(chosen or reports[0], reports if swept else ())
        if not swept:  # a plain report keeps the defaults an earlier sweep chose (it was measured with them)
            old = registry.read_card(name, version).get("style")
            if isinstance(old, dict):
                figures.update({k: old[k] for k in ("defaults", "sweep") if k in old})
        registry.update_card(name, version, {"style": figures})
        return {"model": f"{name}@v{version}", "reports": reports,
                "best": None if chosen is None else chosen["settings"], "style": figures}

    def model_defaults(self, name: str, version: int) -> dict:
        """The sampling settings a model's card says suit it best (a style sweep's choice), checked against
        the settings contract; {} when none (a card edited by hand into junk counts as none)."""
        try:
            card = registry.read_card(name, version)
            # under the card's own choice: the defaults measured for its kind of tokenizer (settings.py)
            kind = (card.get("tokenizer") or {}).get("kind") if isinstance(card.get("tokenizer"), dict) else None
            chosen = {**TOKENIZER_DEFAULTS.get(kind, {}), **((card.get("style") or {}).get("defaults") or {})}
            return {k: BY_NAME[k].check(v) for k, v in chosen.items()
                    if k in BY_NAME and k not in ("length", "unit", "seed")}
        except (GhostwriteError, AttributeError, TypeError) as e:
            log.warning("ignoring the style defaults in the card of %s@v%s: %s", name, version, e)
            return {}
