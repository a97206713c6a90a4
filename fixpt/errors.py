"""User-facing errors.

Anything the user can fix (a bad option, a missing file, a diverged run) raises a
:class:`FixptError`; the CLI prints its one-line message on stderr and exits with code 2.
"""


class FixptError(Exception):
    """Bad input: the message names the problem and the fix."""


class DivergenceError(FixptError):
    """A solve or a training run produced non-finite values."""
