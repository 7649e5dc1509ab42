"""Where the events come from: workshop files, or the embedded toy dataset."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

from diffuse_fit.binned import hese_selection as hs
from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.hese_binning import release_binning
from diffuse_fit.binned.joint import JointBinning, join_tables
from diffuse_fit.errors import DataFormatError, UsageError
from diffuse_fit.io import hese_release as hr
from diffuse_fit.io.events import EventTable
from diffuse_fit.io.hese_splines import find_spline_folder
from diffuse_fit.io.workshop_format import default_cache_dir, read_data, read_simulation
from diffuse_fit.physics import hese_weights as hw
from diffuse_fit.physics import toy
from diffuse_fit.physics.components import WORKSHOP_COMPONENTS, parameter_supports
from diffuse_fit.physics.detector import DETECTOR_SYSTEMATICS
from diffuse_fit.physics.hese_weights import HESE_COMPONENTS_NUISANCE, HESE_COMPONENTS_SPLIT
from diffuse_fit.physics.spectra import astro_models, split_segmented, with_astro_model

COMPONENT_SETS = {
    "workshop": WORKSHOP_COMPONENTS,
    "split": HESE_COMPONENTS_SPLIT,
    "hese": HESE_COMPONENTS_NUISANCE,
}


def component_set(
    components: str = "workshop", astro_model: str = "spl", likelihood: str = "poisson"
) -> tuple:
    """The components of the set ``components`` with the astrophysical spectrum
    ``astro_model`` (:mod:`diffuse_fit.physics.spectra`); :class:`UsageError` in one line for an
    unknown name or a combination that is not implemented (SAY with a spectrum other than
    the single power law)."""
    if components not in COMPONENT_SETS:
        raise UsageError(f"components must be one of {sorted(COMPONENT_SETS)}, not {components!r}")
    try:
        name, _ = split_segmented(astro_model)
    except ValueError as exc:
        raise UsageError(f"astro model {astro_model!r}: {exc}") from None
    if name not in astro_models():
        raise UsageError(
            f"astro model must be one of {list(astro_models())}, not {astro_model!r}"
            " (others: diffuse_fit.register_spectrum)"
        )
    if likelihood == "say" and name not in ("spl", "segmented"):
        raise UsageError(
            f"--likelihood say supports only --astro-model spl or segmented, not {astro_model!r}"
        )
    if name in ("segmented", "flavour") and components == "hese":
        raise UsageError(
            f"--astro-model {name} with --components hese is not implemented "
            "(use --components workshop or split)"
        )
    return with_astro_model(COMPONENT_SETS[components], astro_model)


def model_supports(components) -> dict[str, tuple[float, float]]:
    """The parameters of ``components`` and their ranges, with the release's detector
    systematics for the ``hese`` components (used when the release's spline tables are at
    hand: :meth:`diffuse_fit.binned.dataset.BinnedDataset.with_detector`)."""
    supports = parameter_supports(components)
    if any(hasattr(c, "terms") for c in components):
        supports |= {s.parameter: s.support for s in DETECTOR_SYSTEMATICS}
    return supports


def fixed_parameters(supports: dict, fix: dict) -> dict[str, float]:
    """``fix`` (parameter -> value, ``--fix NAME=VALUE``) checked against the parameters
    ``supports`` (name -> allowed range): :class:`UsageError` in one line naming the
    parameter and value otherwise."""
    out = {}
    for name, value in (fix or {}).items():
        if name not in supports:
            raise UsageError(
                f"--fix {name}={value}: unknown parameter {name!r} (known: {', '.join(supports)})"
            )
        low, high = supports[name]
        value = float(value)
        if not (math.isfinite(value) and low <= value <= high):
            raise UsageError(
                f"--fix {name}={value:g}: outside the allowed range [{low:g}, {high:g}] of {name}"
            )
        out[name] = value
    if out and len(out) == len(supports):
        raise UsageError("--fix: every parameter is fixed; nothing is left to fit")
    return out


@dataclass(frozen=True)
class Inputs:
    """Observed and simulated events, and the truth if the data are simulated."""

    data: EventTable
    simulation: EventTable
    truth: dict | None
    description: str
    spec: dict  # how to load them again: {"toy_seed": N} or {"data": path, "sim": path}
    samples: tuple = ()  # a joint analysis: (name, Inputs) of each sample; data/simulation joined
    splines: str | None = None  # the release's detector-systematics tables (resources/splines)
    use_cache: bool = True  # parse and table caches (--no-cache: False; jobs.table_cache)


def load_inputs(
    data_path=None,
    sim_path=None,
    *,
    hese_release=None,
    double_cascades: str = "drop",
    toy_seed: int = toy.DEFAULT_SEED,
    use_cache: bool = True,
    toy_name: str = "default",
) -> Inputs:
    """Read ``data_path`` and ``sim_path`` (workshop format), or a downloaded HESE release
    folder (converted to the workshop format), or make the toy dataset ``toy_name``
    (:data:`diffuse_fit.physics.toy.TOY_DATASETS`) if none is given.  ``use_cache`` false
    (``--no-cache``): neither the parse cache nor the table cache
    (:mod:`diffuse_fit.jobs.table_cache`) is read or written."""
    inputs = _load_inputs(
        data_path,
        sim_path,
        hese_release=hese_release,
        double_cascades=double_cascades,
        toy_seed=toy_seed,
        use_cache=use_cache,
        toy_name=toy_name,
    )
    return inputs if use_cache else replace(inputs, use_cache=False)


def _load_inputs(
    data_path,
    sim_path,
    *,
    hese_release,
    double_cascades: str,
    toy_seed: int,
    use_cache: bool,
    toy_name: str,
) -> Inputs:
    if hese_release is not None:
        if data_path is not None or sim_path is not None:
            raise DataFormatError(str(hese_release), "give either --hese-release or --data/--sim")
        return load_hese_release(hese_release, double_cascades)
    if toy_name not in toy.TOY_DATASETS:
        raise UsageError(f"toy dataset must be one of {list(toy.TOY_DATASETS)}, not {toy_name!r}")
    if toy_name != "default" and (data_path is not None or sim_path is not None):
        raise DataFormatError(
            str(data_path or sim_path), f"give either --toy {toy_name} or --data/--sim"
        )
    if data_path is None and sim_path is None:
        ds = _toy(toy_name, toy_seed)
        if toy_name == "default":  # the spec of runs made before there was a second toy
            return Inputs(
                ds.data,
                ds.simulation,
                ds.truth,
                f"embedded toy dataset (seed {toy_seed})",
                {"toy_seed": toy_seed},
            )
        description = (
            f"embedded toy dataset '{toy_name}' ({toy.TOY_DATASETS[toy_name][0]} "
            f"spectrum, seed {toy_seed})"
        )
        return Inputs(
            ds.data, ds.simulation, ds.truth, description, {"toy_seed": toy_seed, "toy": toy_name}
        )
    if data_path is None or sim_path is None:
        given, missing = ("--data", "--sim") if sim_path is None else ("--sim", "--data")
        raise DataFormatError(
            str(data_path or sim_path), f"{given} was given without {missing}; give both or neither"
        )
    cache = default_cache_dir() if use_cache else None
    data = read_data(data_path)
    simulation = read_simulation(sim_path, cache_dir=cache)
    truth = data.meta.get("toy", {}).get("truth")
    return Inputs(
        data,
        simulation,
        truth,
        f"data {data_path}, simulation {sim_path}",
        {"data": str(data_path), "sim": str(sim_path)},
    )


@functools.lru_cache(maxsize=2)
def _toy(name: str, seed: int):
    """The toy dataset ``name`` made with ``seed`` (made once per process: the samples of a
    joint analysis may each take the same toy and keep their own bins of it)."""
    astro_model, truth = toy.TOY_DATASETS[name]
    return toy.generate(seed, truth=truth, astro_model=astro_model)


def inputs_from_spec(spec: dict) -> Inputs:
    """Load inputs again from the ``spec`` a run recorded (:attr:`Inputs.spec`)."""
    if "toy_seed" in spec:
        return load_inputs(toy_seed=spec["toy_seed"], toy_name=spec.get("toy", "default"))
    if "hese_release" in spec:
        return load_inputs(
            hese_release=spec["hese_release"], double_cascades=spec["double_cascades"]
        )
    return load_inputs(spec.get("data"), spec.get("sim"))


def load_hese_release(folder, double_cascades: str = "drop") -> Inputs:
    """The HESE 7.5-year release in ``folder`` as workshop-format events."""
    release_sim, release_data = hr.read_release(folder)
    sim, data = hw.to_workshop(release_sim, release_data, double_cascades)
    counts = hs.double_cascade_counts(release_data)
    choice = counts[double_cascades]
    other = "cascade" if double_cascades == "drop" else "drop"
    description = (
        f"HESE 7.5-year release {folder} (the release's own bins by default; in the "
        f"workshop's, --binning workshop: double cascades '{double_cascades}' "
        f"({choice['in_bins']} of {choice['events']} data events in the bins, "
        f"{choice['dropped_by_choice']} double cascades dropped by this choice; "
        f"'{other}' would keep {counts[other]['in_bins']}))"
    )
    spec = {"hese_release": str(folder), "double_cascades": double_cascades}
    splines = find_spline_folder(folder)
    if splines is not None:
        description += f"; detector-systematics tables {splines}"
    return Inputs(
        data, sim, None, description, spec, splines=None if splines is None else str(splines)
    )


def sample_inputs(sample) -> Inputs:
    """The inputs of a specification's sample (:class:`diffuse_fit.io.analysis.SampleSpec`)."""
    i = sample.inputs
    if i.hese_release is not None:
        return load_inputs(
            hese_release=i.hese_release, double_cascades=i.double_cascades, use_cache=i.cache
        )
    if i.data is not None:
        return load_inputs(i.data, i.simulation, use_cache=i.cache)
    return load_inputs(toy_seed=i.toy_seed, toy_name=i.toy or "default", use_cache=i.cache)


def analysis_inputs(spec) -> Inputs:
    """The inputs of a specification (:class:`diffuse_fit.io.analysis.AnalysisSpec`): its
    sample's, or for several samples each sample's (``samples``) with their events joined
    (:func:`diffuse_fit.binned.joint.join_tables`; the bins keep them apart)."""
    if len(spec.samples) == 1:
        return sample_inputs(spec.samples[0])
    check_joint(spec)
    names = [s.name for s in spec.samples]
    parts = [sample_inputs(s) for s in spec.samples]
    truths = [p.truth for p in parts]
    truth = truths[0] if all(t == truths[0] for t in truths) else None
    description = "; ".join(
        f"sample {n}: {p.description}" for n, p in zip(names, parts, strict=True)
    )
    return Inputs(
        join_tables(names, [p.data for p in parts], "data"),
        join_tables(names, [p.simulation for p in parts], "simulation"),
        truth,
        description,
        {"samples": {n: p.spec for n, p in zip(names, parts, strict=True)}},
        tuple(zip(names, parts, strict=True)),
    )


def check_joint(spec) -> None:
    """A joint fit's samples share their parameters by name: they must have the same
    components, spectrum and likelihood (:class:`UsageError` naming the first that differs)."""
    first = spec.samples[0]
    for s in spec.samples[1:]:
        for key in ("components", "astro_model", "segments_GeV", "likelihood"):
            if getattr(s, key) != getattr(first, key):
                raise UsageError(
                    f"samples.{s.name}.{key} = {getattr(s, key)!r} differs from sample "
                    f"{first.name}'s {getattr(first, key)!r}; a joint fit takes the same "
                    f"{key} in every sample"
                )


def sample_binning(sample, inputs: Inputs | None = None):
    """The binning of a specification's sample (None: the workshop's): its edges, or the
    HESE release's own (:func:`diffuse_fit.binned.hese_binning.release_binning`) for the
    preset ``hese-release`` and, by default, for inputs read from a HESE release folder."""
    b = sample.binning if sample is not None else None
    preset = b.preset if b is not None else "auto"
    explicit = b is not None and b.explicit()
    from_release = inputs is not None and "hese_release" in inputs.spec
    if preset == "hese-release" or (preset == "auto" and not explicit and from_release):
        if inputs is not None and inputs.spec.get("double_cascades") == "cascade":
            raise UsageError(
                "--double-cascades cascade merges double cascades into cascades, a "
                "choice of the workshop binning: add --binning workshop (the "
                "release's binning bins them in energy x length)"
            )
        return release_binning()
    if not explicit:
        return None
    zenith = b.zenith_edges()
    default = Binning()
    return Binning(
        energy_edges=default.energy_edges if b.energy_edges_GeV is None else b.energy_edges_GeV,
        zenith_edges=default.zenith_edges if zenith is None else zenith,
        topology_codes=b.topology_codes,
    )


def analysis_record(
    analysis,
    inputs: Inputs,
    prior_spec,
    components,
    astro_model,
    likelihood,
    binning: Binning | None,
) -> dict:
    """The specification a run records (``diffuse-fit spec --from-run`` writes it back): the
    one given, else today's options as one (with the binning's edges where not the
    workshop's)."""
    if analysis is not None:
        return analysis.to_dict()
    from diffuse_fit.io.analysis import BinningSpec, from_options  # pydantic: when recorded

    spec = from_options(
        priors=prior_spec,
        components=components,
        astro_model=astro_model,
        likelihood=likelihood,
        inputs=inputs.spec,
    )
    if isinstance(binning, JointBinning):  # the release's own
        sample = spec.samples[0].model_copy(update={"binning": BinningSpec(preset="hese-release")})
        spec = spec.model_copy(update={"samples": [sample]})
    elif binning is not None:
        edges = BinningSpec(
            energy_edges_GeV=binning.energy_edges.tolist(),
            zenith_edges_rad=binning.zenith_edges.tolist(),
            topology_codes=binning.topology_codes.tolist(),
        )
        sample = spec.samples[0].model_copy(update={"binning": edges})
        spec = spec.model_copy(update={"samples": [sample]})
    return spec.to_dict()
