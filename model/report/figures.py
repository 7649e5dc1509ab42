"""Saving a figure into a run folder (matplotlib only: cheap to import for any job)."""

from __future__ import annotations

import matplotlib.pyplot as plt

from diffuse_fit.io.run_folder import Stage


def save_figure(stage: Stage, fig: plt.Figure, name: str, dpi: int = 130) -> None:
    """Add ``fig`` to the run as ``name.png`` and ``name.pdf``; close it."""
    for fmt in ("png", "pdf"):
        stage.write_with(f"{name}.{fmt}", lambda path, f=fmt: fig.savefig(path, format=f, dpi=dpi))
    plt.close(fig)
