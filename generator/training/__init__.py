"""Training: a corpus becomes a registered model. runs.py prepares a run (tokenizer, memmap token streams
via data.py, the run folder, locked by runlock.py), autosize.py picks a model the time budget affords and
schedule.py keeps the learning rate on the budget, trainer.py trains (`TrainConfig`, `train`) and
evaluate.py scores, distributed.py runs it on several processes (DDP), and main.py is the entry point
the processes of `ghostwrite train --nproc N` run (`python -m generator.training.main --config-json FILE`;
under torchrun, run `python -m bot.cli train`). Import the modules themselves: this package imports
nothing, so importing one stays cheap.
"""
