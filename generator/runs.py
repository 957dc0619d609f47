"""Temporary alias (issue 10): this module is now `generator.training.runs`. It stays only while generator/cli.py
(being edited for issue 16) still imports the old name; it goes when the CLI moves to bot/cli."""

import sys

from generator.training import runs as _moved

sys.modules[__name__] = _moved
