"""`ghostwrite generate MODEL PROMPT`: continue a prompt through the continuation service. Its sampling
options are the settings contract's (bot.service.SETTINGS), one per setting: `setting_options`."""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.markup import escape

from bot.cli.common import err, fail
from bot.service import SETTINGS, GhostwriteError, Setting


def _help(s: Setting) -> str:
    if s.many:
        return f"{s.help}."
    if s.type is str and not s.choices:
        return f"{s.help} (\\n: a newline)."
    if s.choices:
        return f"{s.help}: {' | '.join(s.choices)}."
    if s.per_unit:
        return f"{s.help}: at most " + ", ".join(f"{n:,} {u}" for u, n in s.per_unit.items()) + "."
    return f"{s.help}; {s.bounds_text()}."


def _check(s: Setting) -> Callable[[Any], Any]:
    """The option's callback: the value checked against the contract when the command line is read (a
    length against its largest cap: the service checks it against its unit)."""

    def check(value):
        try:
            return s.check(value)
        except GhostwriteError as e:
            raise typer.BadParameter(str(e)) from None

    return check


def _annotation(s: Setting) -> Any:
    if s.many:
        return list[str]  # repeatable: --stop A --stop B
    return s.type | None if s.optional else s.type


def _shown_default(s: Setting) -> bool | str:
    if s.many:
        return False
    if s.type is str and not s.choices:
        return s.default.replace("\n", "\\n")
    return True


def setting_options(fn: Callable) -> Callable:
    """Give `fn(..., **settings)` one option per setting of the contract — its flags (--top-k, -t), default,
    help (with the bounds) and a check against the bounds — as typer reads a signature; `fn` gets them as
    keyword arguments."""
    sig = inspect.signature(fn)
    own = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    arguments = [p for p in own if isinstance(p.default, typer.models.ArgumentInfo)]
    options = [inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                 annotation=_annotation(s),
                                 default=typer.Option(s.default, *s.flags, help=_help(s), callback=_check(s),
                                                      show_default=_shown_default(s)))
               for s in SETTINGS]
    # (the settings' options after the arguments, before the command's own: typer passes all by name)
    fn.__signature__ = sig.replace(parameters=arguments + options + own[len(arguments):])  # type: ignore[attr-defined]
    return fn


@setting_options
def generate_command(
    model: str = typer.Argument(..., help="NAME or NAME@vN"),
    prompt: str = typer.Argument("", help="The text to continue ('-' reads standard input)."),
    n: int = typer.Option(1, "-n", help="Number of samples."),
    stream: bool = typer.Option(False, "--stream", help="Print as it generates."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per sample."),
    *,
    ctx: typer.Context,
    **settings: Any,
):
    """Continue PROMPT with MODEL."""
    from bot.service import ContinuationService, Request, lookup_setting

    # only the settings given on the command line: the others are the model's defaults (its card's best
    # settings, from a style sweep), else the contract's
    settings = {k: v for k, v in settings.items()
                if getattr(ctx.get_parameter_source(k), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")}

    seed, max_seed = settings.get("seed"), lookup_setting("seed").high

    if prompt == "-":  # bytes, whatever the locale: the service's door (clean_text) decides about bad ones
        stdin = getattr(sys.stdin, "buffer", None)
        prompt = stdin.read().decode("utf-8", "surrogateescape") if stdin is not None else sys.stdin.read()
    if n < 1 or n > 100:
        fail(f"-n must be between 1 and 100, got {n}")
    if seed is not None and seed + n - 1 > max_seed:  # sample i takes seed + i
        fail(f"--seed {seed} with -n {n} goes past the largest seed, {max_seed}")
    svc = ContinuationService()
    for i in range(n):
        s = dict(settings, seed=None if seed is None else seed + i)
        req = Request(prompt=prompt, model=model, settings=s, source="cli")
        st = svc.stream(req)  # validates: a prompt that was not UTF-8 is repaired, and req says so
        prompt = req.prompt
        if i == 0 and req.input_note:
            err.print(f"[yellow]warning:[/] {req.input_note}", highlight=False, soft_wrap=True)
        if stream and not json_out:
            try:
                for piece in st:
                    sys.stdout.write(piece)
                    sys.stdout.flush()
            except KeyboardInterrupt:
                st.close()
                sys.stdout.write("\n")
                raise
            sys.stdout.write("\n")
        else:
            for _ in st:
                pass
        r = st.result
        if r.status == "error":
            fail(r.error or "generation failed")
        if json_out:
            print(json.dumps({"id": r.generation_id, "model": r.model, "version": r.version, "prompt": prompt,
                              "text": r.text, "status": r.status, "finish_reason": r.finish_reason,
                              "note": r.note, "settings": r.settings,
                              "tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "latency_ms": r.latency_ms},
                             ensure_ascii=False))
        elif not stream:
            print(r.text)
        if n > 1 and not json_out and i < n - 1:
            print("---")
        if r.note and not json_out:
            err.print(f"[yellow]note:[/] {escape(r.note)}", highlight=False, soft_wrap=True)
        if r.store_error:
            # (on stderr: standard output carries the text, or one JSON object per line, and nothing else)
            err.print(f"[yellow]warning:[/] not stored yet: {escape(r.store_error)}", highlight=False, soft_wrap=True)
