"""`python -m generator.training.main --config-json FILE`: one process of a distributed training run.

`ghostwrite train --nproc N` starts its processes so (see distributed.py): the configuration comes from the
file and the outcome (card or error) goes to the file named by GHOSTWRITE_DDP_RESULT. The command line's
`ghostwrite train` lives in bot/cli (generator is a library and never imports it); under torchrun run that:

    torchrun --nproc-per-node 2 -m bot.cli train CORPUS --name MODEL --max-time 600
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
    print("usage: python -m generator.training.main --config-json FILE "
          "(to train from the command line: ghostwrite train CORPUS, or python -m bot.cli train CORPUS)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
