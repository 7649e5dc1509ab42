"""Value checks shared by the input readers: one column at a time, errors naming the row.

A :class:`Range` check also settles values printed with too few digits to land inside a
closed range: a value outside a closed bound by no more than half a unit in the last digit
of its shortest decimal form (``repr``) -- e.g. a zenith of ``3.142`` for pi -- *is* the
bound, written rounded; it is set to the bound and counted.  Anything further out, and
anything beyond an open bound, is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import cast

import numpy as np

from diffuse_fit.errors import DataFormatError


@dataclass(frozen=True)
class Range:
    """Values in ``[low, high]``; ``*_open`` make a bound strict (and never clamped)."""

    low: float
    high: float
    requirement: str  # what failing means, e.g. "is outside [0, pi] radians"
    low_open: bool = False
    high_open: bool = False

    def inside(self, v: np.ndarray) -> np.ndarray:
        above = v > self.low if self.low_open else v >= self.low
        below = v < self.high if self.high_open else v <= self.high
        return above & below

    def rounded_bound(self, value: float) -> float | None:
        """The closed bound ``value`` is a rounded printing of, or ``None``."""
        if value < self.low:
            bound, is_open = self.low, self.low_open
        elif value > self.high:
            bound, is_open = self.high, self.high_open
        else:
            return None
        if is_open or not np.isfinite(bound):
            return None
        printed = Decimal(repr(float(value))).normalize()
        exponent = cast(int, printed.as_tuple().exponent)  # an int: the value is finite
        half_unit = Fraction(1, 2) * Fraction(10) ** exponent
        return float(bound) if abs(Fraction(printed) - Fraction(bound)) <= half_unit else None


POSITIVE_ENERGY = Range(0.0, np.inf, "is not a positive energy in GeV", low_open=True)
ZENITH = Range(0.0, np.pi, "is outside [0, pi] radians")


def non_negative(what: str) -> Range:
    """A check that values are >= 0; ``what`` names them in the message (e.g. "weights")."""
    return Range(0.0, np.inf, f"is negative; {what} must be >= 0")


def short_integer(number: int) -> str:
    """A long integer as its first and last digits and its number of digits."""
    text = str(number)
    digits = len(text.lstrip("-"))
    return text if digits <= 20 else f"{text[:8]}...{text[-4:]} ({digits} digits)"


type TestPair = tuple[Callable[[np.ndarray], np.ndarray], str]
"""A check as (test returning a boolean array, what failing it means)."""
type Check = Range | TestPair
"""What :func:`check_column` takes: a :class:`Range` or a :data:`TestPair`."""


def one_of(codes: Iterable[float], meaning: str) -> TestPair:
    """A check that values are among ``codes``; ``meaning`` says what the codes are."""
    return (lambda v: np.isin(v, list(codes)), f"is not {meaning}")


def _clamp(values: np.ndarray, bad: np.ndarray, check: Range, name: str, source: str) -> int:
    """Set the rounded bounds among ``values[bad]`` to their bound; error on the first other."""
    unique, inverse = np.unique(values[bad], return_inverse=True)
    bounds = [check.rounded_bound(u) for u in unique]
    for row, k in zip(bad, inverse, strict=True):
        if bounds[k] is None:
            value = float(values[row])
            raise DataFormatError(
                source, f"value {value!r} {check.requirement}", field=name, row=int(row)
            )
    values[bad] = np.array(bounds, dtype=np.float64)[inverse]
    return int(bad.size)


def check_column(
    values: np.ndarray,
    name: str,
    source: str,
    check: Check | None = None,
    allow_nan: bool = False,
) -> int:
    """Raise :class:`DataFormatError` at the first non-finite value (NaN allowed if
    ``allow_nan``) or the first value failing ``check``: a :class:`Range` (rounded closed
    bounds are set to the bound, in place) or a pair (test, what failing it means).

    Returns the number of values set to a bound.
    """
    finite = np.isfinite(values)
    bad = np.flatnonzero(~(finite | np.isnan(values)) if allow_nan else ~finite)
    if bad.size:
        raise DataFormatError(
            source,
            f"non-finite value {float(values[bad[0]])!r} (NaN, Infinity or a number "
            "beyond the float range)",
            field=name,
            row=int(bad[0]),
        )
    if check is None:
        return 0
    if isinstance(check, Range):
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~(check.inside(values) | np.isnan(values)))
        return _clamp(values, bad, check, name, source) if bad.size else 0
    test, requirement = check
    bad = np.flatnonzero(~test(values))
    if bad.size:
        value = float(values[bad[0]])
        raise DataFormatError(source, f"value {value!r} {requirement}", field=name, row=int(bad[0]))
    return 0
