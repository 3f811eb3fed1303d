"""The one exception type users see: its message is a complete, one-paragraph explanation."""


class DemixganError(Exception):
    """A problem caused by input, data or environment that the user can fix.

    The CLI prints the message (no traceback) and exits with status 2, so every
    message should say what went wrong, where, and how to fix it.
    """
