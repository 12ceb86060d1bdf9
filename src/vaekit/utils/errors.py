"""The one exception type that vaekit raises for bad input; the CLI prints it as a one-line error."""


class VaekitError(Exception):
    """A problem the user can fix (bad option, missing or corrupt file, conflicting run folder)."""
