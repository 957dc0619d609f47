"""`ghostwrite generate MODEL PROMPT`: continue a prompt through the continuation service."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.markup import escape

from bot.cli.common import MAX_SEED, err, fail


def generate_command(
    model: str = typer.Argument(..., help="NAME or NAME@vN"),
    prompt: str = typer.Argument("", help="The text to continue ('-' reads standard input)."),
    length: int = typer.Option(200, "--length", "-l", help="How much to write, in --unit."),
    unit: str = typer.Option("chars", "--unit", "-u", help="tokens | chars | words | sentences | paragraphs"),
    temperature: float = typer.Option(0.8, "--temperature", "-t", help="0 = greedy."),
    top_k: int = typer.Option(0, "--top-k", help="Sample from the k most likely tokens (0 = off)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling threshold in (0, 1]."),
    repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", help="> 1 discourages repeats."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Same seed and settings → same text."),
    n: int = typer.Option(1, "-n", help="Number of samples."),
    stream: bool = typer.Option(False, "--stream", help="Print as it generates."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per sample."),
):
    """Continue PROMPT with MODEL."""
    from bot.service import ContinuationService, Request

    if prompt == "-":  # bytes, whatever the locale: the service's door (clean_text) decides about bad ones
        stdin = getattr(sys.stdin, "buffer", None)
        prompt = stdin.read().decode("utf-8", "surrogateescape") if stdin is not None else sys.stdin.read()
    if n < 1 or n > 100:
        fail(f"-n must be between 1 and 100, got {n}")
    if seed is not None and seed >= 0 and seed + n - 1 > MAX_SEED:  # sample i takes seed + i
        fail(f"--seed {seed} with -n {n} goes past the largest seed, {MAX_SEED}")
    svc = ContinuationService()
    settings = dict(length=length, unit=unit, temperature=temperature, top_k=top_k, top_p=top_p,
                    repetition_penalty=repetition_penalty, seed=seed)
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
                              "text": r.text, "status": r.status, "settings": r.settings,
                              "tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "latency_ms": r.latency_ms},
                             ensure_ascii=False))
        elif not stream:
            print(r.text)
        if n > 1 and not json_out and i < n - 1:
            print("---")
        if r.store_error:
            # (on stderr: standard output carries the text, or one JSON object per line, and nothing else)
            err.print(f"[yellow]warning:[/] not stored yet: {escape(r.store_error)}", highlight=False, soft_wrap=True)
