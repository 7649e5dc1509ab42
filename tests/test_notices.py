"""The warning filters around sampling are narrow: pytensor's object-mode notice is ignored,
every other warning (numerical ones, other notices of the same category) still shows."""

from __future__ import annotations

import warnings

import pytest

from diffuse_fit.inference.notices import ignore_object_mode_notice


def _warn_from(module: str, message: str, category) -> None:
    """``warnings.warn`` as if from ``module`` (its ``__name__`` in the caller's globals)."""
    exec(
        compile("warnings.warn(message, category)", module.replace(".", "/") + ".py", "exec"),
        {"__name__": module, "warnings": warnings, "message": message, "category": category},
    )


def test_only_the_object_mode_notice_is_ignored():
    notice = "Numba will use object mode to run truncated_normal_rv's perform method"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ignore_object_mode_notice()
        _warn_from("pytensor.link.numba.dispatch.basic", notice, UserWarning)
        _warn_from("pytensor.link.numba.dispatch.basic", "another notice", UserWarning)
        _warn_from("diffuse_fit.somewhere", notice, UserWarning)  # not pytensor's
        _warn_from("pytensor.tensor", "overflow encountered in exp", RuntimeWarning)
    assert [(w.category, str(w.message)) for w in seen] == [
        (UserWarning, "another notice"),
        (UserWarning, notice),
        (RuntimeWarning, "overflow encountered in exp"),
    ]


def test_outside_a_catch_warnings_block_nothing_is_left_behind():
    with warnings.catch_warnings():
        ignore_object_mode_notice()
    with pytest.warns(UserWarning, match="Numba will use object mode"):
        _warn_from("pytensor.link.numba.dispatch.basic", "Numba will use object mode", UserWarning)
