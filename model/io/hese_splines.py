"""The HESE release's detector-systematics spline tables (photospline's FITS format).

Each table (``resources/splines/{DOMEff,HoleIce,Anisotropy}Splines/*.fits`` of a release
download) is a tensor-product B-spline of ``log10`` of a per-event expectation: the primary
HDU holds the coefficients (one numpy axis per dimension, in dimension order), ``KNOTS0``,
``KNOTS1``, ... the knot vectors, the header ``ORDER0``, ... each dimension's degree.  Its
extents (where it is defined) are ``[t_k, t_{n}]`` of each knot vector ``t`` of degree ``k``
with ``n`` coefficients.  Coordinates (issue 21; PRD 104, 022002, eqs. E13/E14): DOM
efficiency and head-on hole ice ``(log10 E, cos zenith, value)`` (double cascades' hole ice
``(log10 E, log10 L, value)``), anisotropy ``(log10 E, value)`` (double cascades ``(log10 L,
value)``).  A per-event correction is ``10^(S(x, value) - S(x, nominal))``, exactly 1 at the
nominal value; events outside a table's extents are left uncorrected.

Reading needs astropy (imported here only); evaluation is :class:`scipy.interpolate.NdBSpline`
(tested against an independent de Boor evaluation to 1e-12 on every table of the release).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffuse_fit.errors import DataFormatError


@dataclass(frozen=True)
class SplineTable:
    """A tensor-product B-spline: ``knots`` per dimension, ``coefficients`` (one axis per
    dimension), ``degrees`` per dimension; ``source`` the file."""

    knots: tuple[np.ndarray, ...]
    coefficients: np.ndarray
    degrees: tuple[int, ...]
    source: str = "<spline>"

    @property
    def ndim(self) -> int:
        return len(self.knots)

    @property
    def extents(self) -> np.ndarray:
        """``(ndim, 2)``: where each dimension's spline is defined, ``[t_k, t_n]``."""
        return np.array(
            [
                (t[k], t[n])
                for t, k, n in zip(self.knots, self.degrees, self.coefficients.shape, strict=True)
            ]
        )

    def inside(self, points: np.ndarray) -> np.ndarray:
        """Whether each point ``(n, ndim)`` lies inside the extents (closed)."""
        points = np.atleast_2d(np.asarray(points, dtype=np.float64))
        e = self.extents
        return np.all((points >= e[:, 0]) & (points <= e[:, 1]), axis=1)

    def evaluate(self, points: np.ndarray) -> np.ndarray:
        """The spline at ``points`` ``(n, ndim)`` inside the extents (NaN outside)."""
        from scipy.interpolate import NdBSpline

        points = np.atleast_2d(np.asarray(points, dtype=np.float64))
        spline = NdBSpline(self.knots, self.coefficients, self.degrees, extrapolate=False)
        out = np.full(len(points), np.nan)
        inside = self.inside(points)
        out[inside] = spline(points[inside])
        return out

    def correction(self, coordinates: np.ndarray, value: float, nominal: float) -> np.ndarray:
        """Per-event ``10^(S(x, value) - S(x, nominal))`` for the event coordinates ``x``
        ``(n, ndim - 1)`` (the parameter is the last dimension); 1 for events outside the
        extents (at either value), exactly 1 at ``value == nominal``."""
        x = np.atleast_2d(np.asarray(coordinates, dtype=np.float64))
        at = np.column_stack([x, np.full(len(x), float(value))])
        at_nominal = np.column_stack([x, np.full(len(x), float(nominal))])
        inside = self.inside(at_nominal) & self.inside(at)
        out = np.ones(len(x))
        out[inside] = 10.0 ** (self.evaluate(at[inside]) - self.evaluate(at_nominal[inside]))
        return out


def read_spline_table(path: str | os.PathLike[str]) -> SplineTable:
    """A photospline FITS table; :class:`DataFormatError` naming the file if it is not one."""
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdus:
            header = hdus[0].header
            coefficients = np.asarray(hdus[0].data, dtype=np.float64)
            ndim = coefficients.ndim
            degrees = tuple(int(header[f"ORDER{i}"]) for i in range(ndim))
            knots = tuple(np.asarray(hdus[f"KNOTS{i}"].data, dtype=np.float64) for i in range(ndim))
    except FileNotFoundError:
        raise DataFormatError(str(path), "no such spline table") from None
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(str(path), f"is not a photospline FITS table ({exc})") from None
    for i, (t, k, n) in enumerate(zip(knots, degrees, coefficients.shape, strict=True)):
        if (
            t.ndim != 1
            or t.size != n + k + 1
            or np.any(np.diff(t) < 0)
            or not np.all(np.isfinite(t))
        ):
            raise DataFormatError(
                str(path),
                f"KNOTS{i}: {t.size} knots for {n} coefficients "
                f"of degree {k} (need {n + k + 1}, non-decreasing, finite)",
            )
    if not np.all(np.isfinite(coefficients)):
        raise DataFormatError(str(path), "non-finite spline coefficients")
    return SplineTable(knots, coefficients, degrees, str(path))


SPLINE_FOLDERS = ("DOMEffSplines", "HoleIceSplines", "AnisotropySplines")


def find_spline_folder(release: str | os.PathLike[str]) -> Path | None:
    """The folder holding the release's spline tables (``DOMEffSplines/`` etc.) for a release
    path as given to ``--hese-release``: ``<path>/resources/splines``, ``<path>/splines``,
    the ``splines`` beside a ``resources/data`` folder, or ``path`` itself; None if none."""
    path = Path(release)
    candidates = [
        path / "resources" / "splines",
        path / "splines",
        path.parent / "splines",
        path / "HESE-7-year-data-release" / "resources" / "splines",
        path,
    ]
    for folder in candidates:
        if all((folder / name).is_dir() for name in SPLINE_FOLDERS):
            return folder
    return None


def read_release_splines(folder: str | os.PathLike[str]) -> dict[str, SplineTable]:
    """Every ``*.fits`` table under the three systematics' folders of ``folder``, keyed by
    its path relative to ``folder`` (``DOMEffSplines/domefficiency_atmConv_shower.fits``)."""
    folder = Path(folder)
    out = {}
    for name in SPLINE_FOLDERS:
        for path in sorted((folder / name).glob("*.fits")):
            out[f"{name}/{path.name}"] = read_spline_table(path)
    if not out:
        raise DataFormatError(
            str(folder), f"holds no spline tables under {', '.join(SPLINE_FOLDERS)}"
        )
    return out
