"""The release's detector-systematics spline tables (issue 21, item 2: the reader and the
evaluation), against an independent de Boor evaluation written here (1e-12), on every table
in ../shared/hese7/splines, at random points and on knots; the correction is exactly 1 at the
nominal value and 1 outside the extents."""

from __future__ import annotations

import itertools
import zlib
from pathlib import Path

import numpy as np
import pytest

from diffuse_fit.errors import DataFormatError
from diffuse_fit.io.hese_splines import read_spline_table

SPLINES = Path(__file__).parents[2] / "shared" / "hese7" / "splines"
TABLES = sorted(SPLINES.glob("*/*.fits"))
pytestmark = pytest.mark.skipif(not TABLES, reason="../shared/hese7/splines not present")


def _basis(t, k, x):
    """All B-spline basis values of degree k at x by the Cox-de Boor recursion (the interval
    [t_i, t_i+1) holding x; the last non-empty interval closed)."""
    n = len(t) - k - 1
    b = np.zeros(len(t) - 1)
    last = max(i for i in range(len(t) - 1) if t[i] < t[i + 1])
    for i in range(len(t) - 1):
        if t[i] <= x < t[i + 1] or (i == last and x == t[i + 1]):
            b[i] = 1.0
    for d in range(1, k + 1):
        nxt = np.zeros(len(t) - 1 - d)
        for i in range(len(nxt)):
            left = (x - t[i]) / (t[i + d] - t[i]) * b[i] if t[i + d] > t[i] else 0.0
            right = (
                (t[i + d + 1] - x) / (t[i + d + 1] - t[i + 1]) * b[i + 1]
                if t[i + d + 1] > t[i + 1]
                else 0.0
            )
            nxt[i] = left + right
        b = nxt
    return b[:n]


def _de_boor(table, point):
    bases = [_basis(t, k, x) for t, k, x in zip(table.knots, table.degrees, point, strict=True)]
    value = table.coefficients
    for b in reversed(bases):  # contract the last axis first
        value = value @ b
    return float(value)


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.stem)
def test_every_table_equals_de_boor(path):
    table = read_spline_table(path)
    rng = np.random.default_rng(zlib.crc32(path.stem.encode()))  # per table, reproducible
    e = table.extents
    random = rng.uniform(e[:, 0], e[:, 1], size=(20, table.ndim))
    # on knots: interior knots of each dimension, combined with random coordinates
    knots = []
    for dim, (t, k) in enumerate(zip(table.knots, table.degrees, strict=True)):
        inner = np.unique(t[k : len(t) - k])
        for x in rng.choice(inner, size=min(4, inner.size), replace=False):
            p = rng.uniform(e[:, 0], e[:, 1])
            p[dim] = x
            knots.append(p)
    corners = np.array(list(itertools.product(*e)))  # the extents' corners
    points = np.vstack([random, knots, corners])
    got = table.evaluate(points)
    expected = np.array([_de_boor(table, p) for p in points])
    np.testing.assert_allclose(
        got, expected, rtol=0, atol=1e-12 * max(1.0, np.max(np.abs(expected)))
    )


def test_correction_is_one_at_nominal_and_outside():
    table = read_spline_table(SPLINES / "DOMEffSplines" / "domefficiency_atmConv_track.fits")
    e = table.extents
    rng = np.random.default_rng(1)
    x = rng.uniform(e[:-1, 0], e[:-1, 1], size=(50, table.ndim - 1))
    assert np.all(table.correction(x, 0.99, 0.99) == 1.0)
    moved = table.correction(x, 1.1, 0.99)
    assert np.all(np.isfinite(moved)) and not np.allclose(moved, 1.0)
    outside = x.copy()
    outside[:, 0] = e[0, 1] + 1.0  # above the energy extent: left unchanged
    assert np.all(table.correction(outside, 1.1, 0.99) == 1.0)


def test_a_file_that_is_not_a_table_is_one_line(tmp_path):
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not a fits file")
    with pytest.raises(DataFormatError, match="bad.fits"):
        read_spline_table(bad)
    with pytest.raises(DataFormatError, match="no such spline table"):
        read_spline_table(tmp_path / "missing.fits")
