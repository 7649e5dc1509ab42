"""Degenerate inputs: refused with one line at binning time, or reported by the fits.

Before, an all-zero component, data all outside the bins or one absurd weight gave
exit 0, "converged", the optimizer's start values and NaN errors.
"""

import numpy as np
import pytest

from diffuse_fit.binned import reference_fit
from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.dataset import BinnedDataset, bin_dataset
from diffuse_fit.binned.templates import build_templates
from diffuse_fit.errors import DataFormatError
from diffuse_fit.inference.map_fit import X0, MapFitter
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.pymc_model import build_model, parameter_supports
from diffuse_fit.io.events import EventTable
from diffuse_fit.physics.components import WORKSHOP_COMPONENTS

NAMES = ("atmos_norm", "astro_norm", "astro_gamma")


def _with(table: EventTable, source: str, **columns) -> EventTable:
    return EventTable({**table.columns, **columns}, source)


def _zero_inside(sim: EventTable, field: str) -> np.ndarray:
    """``field`` set to 0 for the simulated events inside the bins, kept outside."""
    index = Binning().bin_index(sim["energy"], sim["zenith"], sim["topology"])
    return np.where(index >= 0, 0.0, sim[field])


def _unchecked(data: EventTable, sim: EventTable) -> BinnedDataset:
    """What bin_dataset built before its checks: a dataset a fit can be run on."""
    b = Binning()
    data_index = b.bin_index(data["energy"], data["zenith"], data["topology"])
    sim_index = b.bin_index(sim["energy"], sim["zenith"], sim["topology"])
    templates = build_templates(sim, b, WORKSHOP_COMPONENTS, bin_index=sim_index)
    return BinnedDataset(b.histogram(data_index), templates, sim_index, data, sim, 0, 0)


def _map(binned: BinnedDataset):
    priors = resolve_priors("flat", parameter_supports(binned.components))
    return MapFitter(build_model(binned, priors)).fit()


# --- refused by bin_dataset ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "everywhere", "parameters"),
    [
        ("astroWeight", True, "astro_norm, astro_gamma"),
        ("astroWeight", False, "astro_norm, astro_gamma"),
        ("atmoWeight", True, "atmos_norm"),
        ("atmoWeight", False, "atmos_norm"),
    ],
)
def test_component_without_weight_in_the_bins_is_refused(
    toy_dataset, field, everywhere, parameters
):
    sim = toy_dataset.simulation
    zeroed = np.zeros(len(sim)) if everywhere else _zero_inside(sim, field)
    assert everywhere or np.any(zeroed != 0)  # weight left outside the bins: still refused
    with pytest.raises(DataFormatError) as info:
        bin_dataset(toy_dataset.data, _with(sim, "zero_sim.json", **{field: zeroed}))
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"file 'zero_sim.json', field '{field}': ")
    assert f"leaves {parameters} unconstrained" in text
    assert (f"all {len(sim)} simulated events" if everywhere else "inside the bins") in text


def test_data_all_outside_the_bins_is_refused(toy_dataset):
    data = toy_dataset.data
    below = _with(data, "low_data.json", energy=np.full(len(data), 5.0e4))  # below 60 TeV
    with pytest.raises(
        DataFormatError,
        match=r"^file 'low_data.json': empty likelihood: "
        rf"none of the {len(data)} data events falls inside the bins ",
    ):
        bin_dataset(below, toy_dataset.simulation)
    doubles = _with(data, "dc_data.json", topology=np.full(len(data), 2.0))  # double cascades
    with pytest.raises(DataFormatError, match="empty likelihood"):
        bin_dataset(doubles, toy_dataset.simulation)


def test_simulation_all_outside_the_bins_is_refused(toy_dataset):
    sim = toy_dataset.simulation
    above = _with(sim, "high_sim.json", energy=np.full(len(sim), 2.0e7))
    with pytest.raises(
        DataFormatError, match=f"none of the {len(sim)} simulated events falls inside"
    ):
        bin_dataset(toy_dataset.data, above)


def test_command_line_exits_with_the_message(toy_dataset, tmp_path, capsys):
    from diffuse_fit.cli import main
    from diffuse_fit.io.workshop_format import write_workshop_file

    sim = toy_dataset.simulation
    write_workshop_file(tmp_path / "sim.json", _with(sim, "x", astroWeight=np.zeros(len(sim))))
    write_workshop_file(tmp_path / "data.json", toy_dataset.data)
    code = main(
        [
            "map",
            "--data",
            str(tmp_path / "data.json"),
            "--sim",
            str(tmp_path / "sim.json"),
            "--out",
            str(tmp_path / "out"),
            "--quiet",
            "--no-cache",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "out" / "map.json").exists()
    assert "sim.json" in err and "'astroWeight'" in err and "astro_norm, astro_gamma" in err


# --- reported by the MAP (datasets built without the checks) ---------------------------


def test_map_names_parameters_a_zero_component_leaves_free(toy_dataset):
    """No astrophysical weight: atmos_norm is the closed-form Poisson MLE sum k / sum A with
    error a / sqrt(sum k); astro_norm and astro_gamma stay at the start and are named."""
    sim = toy_dataset.simulation
    binned = _unchecked(toy_dataset.data, _with(sim, "s", astroWeight=np.zeros(len(sim))))
    result = _map(binned)
    a_per_bin = binned.templates.tables[0].per_bin
    n = binned.counts.sum()
    mle = n / a_per_bin.sum()
    assert result.values["atmos_norm"] == pytest.approx(mle, rel=1e-7)
    assert result.errors["atmos_norm"] == pytest.approx(mle / np.sqrt(n), rel=1e-6)
    assert result.unconstrained == ["astro_norm", "astro_gamma"]
    assert result.errors["astro_norm"] is None and result.errors["astro_gamma"] is None
    assert len(result.problems) == 1 and "astro_norm, astro_gamma" in result.problems[0]
    # the reference fit agrees on the constrained parameter
    ref = reference_fit.fit(binned.counts, binned.simulation, binned.sim_bin_index, 400)
    assert ref.x[0] == pytest.approx(mle, rel=1e-7)


def test_map_names_atmos_norm_without_atmospheric_weight(toy_dataset):
    sim = toy_dataset.simulation
    binned = _unchecked(toy_dataset.data, _with(sim, "s", atmoWeight=np.zeros(len(sim))))
    result = _map(binned)
    ref = reference_fit.fit(binned.counts, binned.simulation, binned.sim_bin_index, 400)
    assert result.unconstrained == ["atmos_norm"] and "atmos_norm" in result.problems[0]
    assert result.errors["atmos_norm"] is None
    assert all(isinstance(result.errors[n], float) for n in NAMES[1:])
    np.testing.assert_allclose([result.values[n] for n in NAMES[1:]], ref.x[1:], rtol=1e-5)


def test_map_with_one_absurd_weight_does_not_pretend(toy_dataset, binned):
    """atmoWeight 1e300 for one simulated event inside the bins: its bin's expectation is
    1e300 at any atmos_norm the optimizer can step to, the gradient 1e300; L-BFGS-B stops
    at the start.  The MAP says so (converged False, problems), with no errors; the
    reference fit does not raise either."""
    sim = binned.simulation
    weights = sim["atmoWeight"].copy()
    weights[np.flatnonzero(binned.sim_bin_index >= 0)[0]] = 1e300
    absurd = _with(sim, "absurd.json", atmoWeight=weights)
    dataset = bin_dataset(toy_dataset.data, absurd)  # finite, positive: not a format error
    result = _map(dataset)
    assert not result.converged
    assert result.values == X0
    assert result.problems[0].startswith("the optimizer did not move from the start values")
    assert any("1.0e+300" in p for p in result.problems)
    assert all(v is None for v in result.errors.values())
    ref = reference_fit.fit(dataset.counts, absurd, dataset.sim_bin_index, 400)
    assert not ref.converged and "did not converge" in ref.message


def test_weights_times_1e_minus_300_is_not_a_converged_fit(toy_dataset, tmp_path, capsys):
    """All weights x1e-300, flat priors: the optimizer runs a norm away and puts the spectral
    index on a bound of its prior.  Not "converged": ``map`` exits 2 with one line naming
    both, writes nothing, and an earlier run stays."""
    from diffuse_fit.cli import main
    from diffuse_fit.fitting.map_core import fit_map
    from diffuse_fit.fitting.profile import ProfileFitter
    from diffuse_fit.io.workshop_format import write_workshop_file

    sim = toy_dataset.simulation
    tiny = EventTable(
        {k: v * 1e-300 if k.endswith("Weight") else v for k, v in sim.columns.items()}, "tiny"
    )
    binned = bin_dataset(toy_dataset.data, tiny)
    priors = resolve_priors("flat", parameter_supports(binned.components))
    result = fit_map(ProfileFitter(binned.templates, priors), binned.counts)
    assert not result.converged
    assert any("astro_norm" in p and "run away" in p for p in result.problems), result.problems
    assert any("astro_gamma" in p and "on the bound" in p for p in result.problems)

    data, sim_file, out = tmp_path / "d.json", tmp_path / "s.json", tmp_path / "run"
    write_workshop_file(data, toy_dataset.data)
    write_workshop_file(sim_file, tiny)
    assert main(["map", "--prior", "flat", "--out", str(out), "--quiet"]) == 0
    before = (out / "map.json").read_bytes()
    argv = [
        "map",
        "--prior",
        "flat",
        "--data",
        str(data),
        "--sim",
        str(sim_file),
        "--no-cache",
        "--out",
        str(out),
        "--quiet",
    ]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("diffuse-fit: error: the MAP fit failed")
    assert "astro_gamma = " in err and "is on the bound" in err
    assert (out / "map.json").read_bytes() == before


def test_boundary_problems():
    from diffuse_fit.fitting.map_core import boundary_problems

    supports = {"n": (0.0, np.inf), "g": (1.0, 4.0)}
    assert boundary_problems({"n": 0.3, "g": 2.5}, supports) == []
    assert boundary_problems({"n": 1e-12, "g": 2.5}, supports) == [
        "n = 1e-12 is on the bound 0 of its prior's support [0, inf]"
    ]
    assert "on the bound 4" in boundary_problems({"n": 1.0, "g": 4.0}, supports)[0]
    assert "run away" in boundary_problems({"n": 1e150, "g": 2.0}, supports)[0]
    assert "run away" in boundary_problems({"x": np.nan}, {})[0]
    assert boundary_problems({"n": 1e-6, "g": 1.0 + 1e-6}, supports) == []


@pytest.mark.slow
def test_sample_goes_on_when_the_map_sits_on_a_bound(tmp_path, capsys):
    """``map`` refuses a MAP on a bound (exit 2); ``sample`` records it (converged false,
    the problem named, said on stderr) and samples the posterior all the same.

    The bound is a prior's support that ends well below the toy's gamma (3.2): log p rises
    steeply into it, so the fit ends on it at float precision on any machine.  (A maximum
    that only drifts towards a bound, as the broken power law's astro_gamma2 on this toy,
    ends where the optimizer's tolerances leave it: within 1e-9 of the bound with one CPU's
    rounding of the toy, 3e-7 from it with another's.)
    """
    import json

    from diffuse_fit.cli import main

    prior = tmp_path / "prior.json"
    prior.write_text('{"astro_gamma": {"dist": "Uniform", "lower": 1, "upper": 2.3}}')
    args = ["--prior", str(prior), "--quiet"]
    assert main(["map", *args, "--out", str(tmp_path / "map")]) == 2
    assert "astro_gamma = 2.3 is on the bound" in capsys.readouterr().err
    assert (
        main(
            [
                "sample",
                *args,
                "--draws",
                "100",
                "--tune",
                "100",
                "--chains",
                "1",
                "--report",
                "--out",
                str(tmp_path / "sample"),
            ]
        )
        == 0
    )
    assert "WARNING: MAP: astro_gamma = 2.3 is on the bound" in capsys.readouterr().err
    recorded = json.loads((tmp_path / "sample" / "map.json").read_text())
    assert recorded["converged"] is False and recorded["at_bound"] == ["astro_gamma"]
    assert (
        "MAP problem: astro_gamma = 2.3 is on the bound"
        in (tmp_path / "sample" / "report.md").read_text()
    )
