"""`python -m generator.training.main CORPUS [options]`: `ghostwrite train` as a module, for launchers.

    torchrun --nproc-per-node 2 -m generator.training.main CORPUS --name MODEL --max-time 600

Under torchrun (RANK / WORLD_SIZE set) every process runs this; they form one DistributedDataParallel
group and rank 0 prints the card (see distributed.py). `ghostwrite train --nproc N` starts its
processes as ``python -m generator.training.main --config-json FILE``: the configuration comes from the file
and the outcome (card or error) goes to the file named by GHOSTWRITE_DDP_RESULT.
"""

from __future__ import annotations

import json
import sys


def _child(path: str) -> int:
    from ..errors import GhostwriteError
    from . import distributed
    from .trainer import TrainConfig, train

    try:
        with open(path, encoding="utf-8") as f:
            cfg = TrainConfig(**json.load(f))
        card = train(cfg)
    except GhostwriteError as e:
        distributed.write_result({"error": str(e)})
        return 2
    except KeyboardInterrupt:
        return 130
    distributed.write_result({"card": card} if card else {"done": True})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 2 and argv[0] == "--config-json":
        return _child(argv[1])
    import typer

    from ..cli import err, train_command
    from ..errors import GhostwriteError

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_command)
    try:
        app(argv, prog_name="python -m generator.training.main")  # exits itself (usage errors: code 2)
    except GhostwriteError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
