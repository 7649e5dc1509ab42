"""What the many-fit commands (scan, toys, sbc) share: tables, priors, context, best fit."""

from __future__ import annotations

import numpy as np

from diffuse_fit.errors import UsageError


def parse_assignments(text: str, names: list[str], what: str) -> dict:
    """``NAME=VALUE,NAME=VALUE`` -> dict, every name known and every value finite."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise UsageError(f"{what}: {part!r} is not NAME=VALUE")
        if name not in names:
            raise UsageError(f"{what}: unknown parameter {name!r} (known: {', '.join(names)})")
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"{what}: {name}={value!r} is not a number") from None
        if not np.isfinite(number):
            raise UsageError(f"{what}: {name}={value} is not finite")
        out[name] = number
    return out


def check_inside(values: dict, priors: dict, what: str) -> None:
    """Refuse values outside their prior's support (one line, naming the parameter)."""
    for name, value in values.items():
        lo, hi = priors[name].support()
        if not lo <= value <= hi:
            raise UsageError(f"{what}: {name}={value:g} is outside its prior's support "
                             f"[{lo:g}, {hi:g}] ({priors[name]})")  # fmt: skip
