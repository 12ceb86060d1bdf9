"""The one exception type that vaekit raises for bad input; the CLI prints it as a one-line error."""


class VaekitError(Exception):
    """A problem the user can fix (bad option, missing or corrupt file, conflicting run folder)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name if it has none: compilers' and
    exporters' messages run to dozens of lines, and a one-line error quotes the first."""
    message = str(exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__
