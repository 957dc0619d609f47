"""`ghostwrite`: the one command. Subcommands from the generator (corpus, train, eval, models) and from
bot/ (generate, repl, logs, retrain, bot, health). Nothing here imports torch: generation goes through
the continuation service. Bad input prints one line and exits with code 2, never a traceback."""

from __future__ import annotations

import json
import logging
import sys
from typing import Optional

import typer

from rich.markup import escape

from bot.service import GhostwriteError, check_database_url, env
from generator.cli import MAX_SEED, err, fail, register  # (until the CLI moves to bot/cli/, issue 10)

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


@app.command("health")
def health_command():
    """Exit 0 when the store opens and at least one model is registered (container health check)."""
    from bot.service import ContinuationService

    ContinuationService().health()  # the store opens, a model is registered; or one line, exit 2
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


def run(argv: list[str] | None = None) -> int:
    """Run `ghostwrite` with these arguments (default: the command line) and return its exit code.
    Whatever a user can get wrong ends here as one line on stderr: a GhostwriteError, junk in an
    environment variable or a bad option (which typer would show as a framed box of several lines)
    exits 2, a refused confirmation 1."""
    errors = sys.modules[typer.BadParameter.__module__]  # click's exceptions (vendored by newer typer)
    try:
        env.check()  # junk in a documented environment variable: one line, before anything is done
        env.log_level()
        check_database_url()
        code = app(args=argv, prog_name="ghostwrite", standalone_mode=False)
    except GhostwriteError as e:
        return _one_line(str(e), 2)
    except errors.UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `ghostwrite logs`: the help (typer's rich help
            if e.format_message().strip():             # is printed already, plain click's is not)
                print(e.format_message(), file=sys.stderr)
            return 2
        where = f" (see `{e.ctx.command_path} --help`)" if getattr(e, "ctx", None) else ""
        return _one_line(f"{e.format_message()}{where}", 2)
    except errors.ClickException as e:
        return _one_line(e.format_message(), e.exit_code)
    except typer.Abort:
        return _one_line("aborted", 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code if isinstance(code, int) else 0


def _one_line(message: str, code: int) -> int:
    message = " ".join(message.split())  # a message of several lines (a usage error) on one
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return code


def main() -> None:
    try:
        level = env.log_level()
    except GhostwriteError:
        level = "WARNING"  # run() says what is wrong with it
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run())


if __name__ == "__main__":
    main()
