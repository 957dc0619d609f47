"""`python -m bot.cli ...`: the `ghostwrite` command (training's subprocesses and retraining jobs run it so)."""

from bot.cli import main

main()
