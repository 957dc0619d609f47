"""`ghostwrite`: the one command. Subcommands from the generator (corpus, train, eval, models) and from
bot/ (generate, repl, logs, retrain, bot, health). Nothing here imports torch: generation goes through
the continuation service. Bad input prints one line and exits with code 2, never a traceback."""

from __future__ import annotations

import json
import logging
import sys
from typing import Optional

import typer

from generator.cli import console, err, fail, register
from generator.errors import GhostwriteError

app = typer.Typer(
    help="Write what comes next in the voice of a chosen author: train LSTM models on a corpus, "
    "then continue prompts in the terminal or on Discord.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
register(app)


@app.command("generate")
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
            console.print(f"[yellow]warning:[/] not stored yet: {r.store_error}", style=None)


@app.command("health")
def health_command():
    """Exit 0 when the store opens and at least one model is registered (container health check)."""
    from bot.store import Store
    from generator.registry import list_models

    store = Store()
    store.close()
    if not list_models():
        fail("no model registered yet")
    print("ok")


def _mount_optional() -> None:
    from bot.logs_cli import app as logs_app

    app.add_typer(logs_app, name="logs")
    for module, attr in (("bot.repl", "repl_command"), ("bot.jobs_cli", "retrain_command"),
                         ("bot.discord.runner", "bot_command")):
        try:
            mod = __import__(module, fromlist=[attr])
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        fn = getattr(mod, attr)
        app.command(attr.removesuffix("_command"))(fn)


_mount_optional()


def main() -> None:
    import os

    level = os.environ.get("GHOSTWRITE_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING), format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except GhostwriteError as e:
        from generator.cli import err

        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
