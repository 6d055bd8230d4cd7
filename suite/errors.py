"""One exception type for every user-facing failure.

The CLI catches :class:`SuiteError` and prints its message as a single line with exit code 2, so messages must
name the file, key or value at fault and what was expected.
"""


class SuiteError(Exception):
    """A user-facing error whose message is a complete one-line explanation."""
