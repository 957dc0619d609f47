"""Corpus text in: the first room of the data flow. corpus.py is the registry of named corpora (save, list,
load a name or a path, the train/validation split); names.py the rule for their names; textfiles.py reads and
decodes text files; recipes.py finds and checks the `corpora/NAME.toml` recipes; fetch.py fetches one
(downloads.py: pip and URL downloads, checksums, archives; cleaning.py: the recipe's `[clean]` steps) and
registers it. Imports run one way: names/textfiles → corpus, cleaning → recipes → fetch."""
