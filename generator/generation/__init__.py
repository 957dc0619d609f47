"""Generation: a trained model writes text. `loaded.load(spec)` gives a `LoadedModel` (loading and the
model handle) whose `generate` (one request stepped on the calling thread, single.py) and `serve` (stepped
together with every other request on the model by the batching engine's thread, engine.py) return
iterators of text pieces. Both paths share one request's bookkeeping (request.py: prompt encoding, seed,
stop rule, token cap, tokens in/out, the decoded text) and one way to advance rows (batch.py: a compiled
chunk or one token chosen in Python, then a forward step). The settings contract is settings.py
(`SamplingSettings`, bounds, `check_prompt`; no torch), where to stop is stopping.py (`StopRule`,
`token_cap`), the token choice is sampling.py (`LogitsProcessor`, `sample_rows`; min-p, DRY, logit bias and
the UTF-8 mask as tensors the compiled loop shares: extras.py), stop strings, banned strings (with their
rewind) and multi-token bias strings are guard.py, and the runner is fastlstm.py (int8 products, one-step and
many-step calls; the compiled loop is fastloop.py).

Imports go one way: loaded → single, engine → batch, request → sampling, stopping → settings. Import the
modules themselves: this package imports nothing, so `generation.settings` stays free of torch.
"""
