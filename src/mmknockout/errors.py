"""One exception type for bad input, so entry points can print a clean message and exit non-zero."""


class InputError(ValueError):
    """Raised when user-supplied data or configuration is invalid; the message names the culprit."""
