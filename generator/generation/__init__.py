"""Generation: a trained model writes text. `loaded.load(spec)` gives a `LoadedModel` whose `generate`
(one stream on the calling thread) and `serve` (stepped together with every other request by the batching
engine, engine.py) return iterators of text pieces. The request's settings contract is settings.py
(`SamplingSettings`, bounds, `check_prompt`; no torch), where to stop is stopping.py (`StopRule`,
`token_cap`), the token choice is sampling.py (`LogitsProcessor`, `sample_rows`), one request's text
bookkeeping is output.py, and the runner is fastlstm.py (int8 products, one-step and many-step calls; the
compiled loop is fastloop.py). Import the modules themselves: this package imports nothing, so
`generation.settings` stays free of torch.
"""
