"""What each parameter of the fit means: its unit and its labels, in one place.

``unit`` is plain text ("1" for a dimensionless number) recorded beside every value in
``map.json``, ``summary.json`` and the fit result; ``label`` is the figure label (LaTeX,
with the unit), ``symbol`` the short one (trace and rank plots).  A parameter not listed
(a variable a user added to the model) is labelled by its name, unit unknown ("").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FLUX_UNIT = "1e-18 GeV^-1 cm^-2 s^-1 sr^-1"  # all-flavour nu + nubar flux at 100 TeV
_FLUX_LATEX = r"$10^{-18}$ GeV$^{-1}$ cm$^{-2}$ s$^{-1}$ sr$^{-1}$"


@dataclass(frozen=True)
class Parameter:
    symbol: str  # LaTeX, no unit
    unit: str  # plain text; "1" dimensionless
    description: str
    latex_unit: str = ""

    @property
    def label(self) -> str:
        """Figure label: the symbol with its unit (none for dimensionless)."""
        return f"{self.symbol}\n[{self.latex_unit}]" if self.latex_unit else self.symbol


PARAMETERS = {
    "atmos_norm": Parameter(
        r"$N_\mathrm{atmos}$", "1", "atmospheric normalization, relative to the nominal flux"
    ),
    "astro_norm": Parameter(
        r"$N_\mathrm{astro}$",
        FLUX_UNIT,
        "astrophysical flux (all flavours, nu + nubar) at 100 TeV",
        _FLUX_LATEX,
    ),
    "astro_gamma": Parameter(r"$\gamma_\mathrm{astro}$", "1", "astrophysical spectral index"),
    "astro_alpha": Parameter(r"$\alpha_\mathrm{astro}$", "1", "log-parabola index at 100 TeV"),
    "astro_beta": Parameter(r"$\beta_\mathrm{astro}$", "1", "log-parabola curvature (per ln E)"),
    "astro_gamma1": Parameter(r"$\gamma_1$", "1", "broken power law: index below the break"),
    "astro_gamma2": Parameter(r"$\gamma_2$", "1", "broken power law: index above the break"),
    "astro_log10_ebreak": Parameter(
        r"$\log_{10}(E_\mathrm{break}/\mathrm{GeV})$", "log10(E/GeV)", "break energy"
    ),
    "astro_log10_ecut": Parameter(
        r"$\log_{10}(E_\mathrm{cut}/\mathrm{GeV})$", "log10(E/GeV)", "cut-off energy"
    ),
    "conv_norm": Parameter(
        r"$N_\mathrm{conv}$", "1", "conventional atmospheric normalization, relative to nominal"
    ),
    "prompt_norm": Parameter(
        r"$N_\mathrm{prompt}$", "1", "prompt atmospheric normalization, relative to nominal"
    ),
    "muon_norm": Parameter(r"$N_\mu$", "1", "atmospheric muon normalization, relative to nominal"),
    "cr_delta_gamma": Parameter(
        r"$\Delta\gamma_\mathrm{CR}$", "1", "cosmic-ray spectral index shift"
    ),
    "kpi_ratio": Parameter(r"$R_{K/\pi}$", "1", "kaon-to-pion ratio, relative to nominal"),
    "nunubar_ratio": Parameter(
        r"$R_{\nu/\bar\nu}$", "1", "neutrino-to-antineutrino ratio, relative to nominal"
    ),
}


def parameter_info(name: str) -> Parameter:
    """The :class:`Parameter` of ``name`` (a bare one for a name not listed)."""
    return PARAMETERS.get(name) or Parameter(name, "", "")


def units(names: Iterable[str]) -> dict[str, str]:
    """Parameter -> unit (plain text) of ``names``."""
    return {n: parameter_info(n).unit for n in names}
