"""User-facing errors.

A `GhostwriteError` carries one line that names the problem. The CLI prints it and exits with code 2;
the REPL and the Discord bot show it to the user. Anything else that escapes is a bug.
"""


class GhostwriteError(Exception):
    """A problem with the user's input or data, reported as one clear line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
