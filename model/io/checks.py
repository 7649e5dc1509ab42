"""Value checks shared by the input readers: one column at a time, errors naming the row."""

from __future__ import annotations

import numpy as np

from model.errors import DataFormatError

POSITIVE_ENERGY = (lambda v: v > 0, "is not a positive energy in GeV")
ZENITH = (lambda v: (v >= 0) & (v <= np.pi), "is outside [0, pi] radians")


def non_negative(what: str):
    """A check that values are >= 0; ``what`` names them in the message (e.g. "weights")."""
    return (lambda v: v >= 0, f"is negative; {what} must be >= 0")


def one_of(codes, meaning: str):
    """A check that values are among ``codes``; ``meaning`` says what the codes are."""
    return (lambda v: np.isin(v, list(codes)), f"is not {meaning}")


def check_column(values: np.ndarray, name: str, source: str, check=None, allow_nan=False) -> None:
    """Raise :class:`DataFormatError` at the first non-finite value (NaN allowed if
    ``allow_nan``) or the first value failing ``check`` = (test, what failing it means)."""
    finite = np.isfinite(values)
    bad = np.flatnonzero(~(finite | np.isnan(values)) if allow_nan else ~finite)
    if bad.size:
        raise DataFormatError(
            source, f"non-finite value {float(values[bad[0]])!r}", field=name, row=int(bad[0])
        )
    if check is not None:
        test, requirement = check
        bad = np.flatnonzero(~test(values))
        if bad.size:
            value = float(values[bad[0]])
            raise DataFormatError(
                source, f"value {value!r} {requirement}", field=name, row=int(bad[0])
            )
