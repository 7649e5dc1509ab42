"""The one exception type for bad input, with the file, field, row and value it concerns."""

from __future__ import annotations


class DataFormatError(ValueError):
    """Input that cannot be used, described in one line.

    Parameters
    ----------
    source : str
        File name (or a label such as ``"<toy simulation>"``) the problem is in.
    message : str
        What is wrong, e.g. ``"value -3.0 is not > 0"``.
    field, row, value
        Where it is and what was found; any may be omitted.
    """

    def __init__(
        self,
        source: object,
        message: str,
        *,
        field: str | None = None,
        row: int | None = None,
        value: object = None,
    ) -> None:
        self.source, self.field, self.row, self.value = str(source), field, row, value
        where = [f"file '{self.source}'"]
        if field is not None:
            where.append(f"field '{field}'")
        if row is not None:
            where.append(f"events[{row}]")
        text = ", ".join(where) + f": {message}"
        if value is not None and repr(value) not in message:
            text += f" (value {value!r})"
        super().__init__(text)


class RunInterrupted(Exception):
    """A run stopped by the user (Ctrl-C / SIGINT) before its results were swapped in."""


class FitFailed(Exception):
    """A fit that did not converge: nothing is written, the message says why (one line)."""


class UsageError(ValueError):
    """Options that cannot be used together or values outside what a command accepts
    (one line, naming the option and value)."""
