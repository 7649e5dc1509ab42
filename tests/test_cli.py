"""The command line's contract on bad arguments: exit status 2, one line on stderr, no work."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from diffuse_fit.cli import MAX_SEED, main

BAD_ARGUMENTS = [
    (["sample", "--draws", "0"], "--draws"),
    (["sample", "--draws", "-5"], "--draws"),
    (["sample", "--chains", "0"], "--chains"),
    (["sample", "--tune", "-1"], "--tune"),
    (["sample", "--seed", "-1"], "--seed"),
    (["sample", "--seed", str(2**70)], "--seed"),
    (["sample", "--seed", str(MAX_SEED + 1)], "--seed"),
    (["sample", "--target-accept", "1.5"], "--target-accept"),
    (["sample", "--target-accept", "0"], "--target-accept"),
    (["sample", "--target-accept", "nan"], "--target-accept"),
    (["map", "--toy-seed", "-3"], "--toy-seed"),
    (["sample", "--draws", "ten"], "--draws"),
    (["fit"], "invalid choice"),
]


@pytest.mark.parametrize(("argv", "named"), BAD_ARGUMENTS)
def test_bad_arguments_exit_2_with_one_line(argv, named, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)] if argv[0] != "fit" else argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("diffuse-fit: error:"), err
    assert named in err
    assert not out.exists()  # refused before any work


def test_largest_seed_is_accepted():
    from diffuse_fit.cli import build_parser

    args = build_parser().parse_args(["sample", "--seed", str(MAX_SEED), "--target-accept", "0.9"])
    assert args.seed == MAX_SEED and args.target_accept == 0.9


def test_help_does_not_import_pymc():
    """``diffuse-fit --help`` parses arguments without importing PyMC, pytensor or ArviZ."""
    code = (
        "import sys\n"
        "from diffuse_fit.cli import main\n"
        "assert main(['--help']) == 0\n"
        "heavy = sorted(m for m in ('pymc', 'pytensor', 'arviz', 'numpy', 'scipy', 'matplotlib')"
        " if m in sys.modules)\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_report_does_not_import_pymc(sample_run, tmp_path):
    """``diffuse-fit report`` reads the run folder alone and never loads PyMC or pytensor."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(sample_run, run)
    code = (
        "import sys\n"
        "from diffuse_fit.cli import main\n"
        f"assert main(['report', '--run', {str(run)!r}, '--quiet']) == 0\n"
        "print(sorted(m for m in ('pymc', 'pytensor', 'nutpie') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (run / "report.md").exists()


def test_executable_exits_with_mains_status_and_all_its_output(tmp_path):
    """The executable ends with ``os._exit`` (no interpreter teardown): its piped (block
    buffered) output still arrives whole, its files are complete, and its exit status is
    :func:`main`'s -- 0 for a fit, 2 for bad input."""
    run = [sys.executable, "-m", "diffuse_fit.cli"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # block buffered
    done = subprocess.run(
        [*run, "map", "--out", str(tmp_path / "fit")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("inputs: embedded toy dataset")
    assert done.stdout.splitlines()[-1].startswith(f"wrote {tmp_path / 'fit'}")
    assert json.loads((tmp_path / "fit" / "map.json").read_text())["astro_gamma"] > 0
    refused = subprocess.run(
        [*run, "map", "--prior", "no-such-prior", "--out", str(tmp_path / "bad")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("diffuse-fit: error: prior 'no-such")
    assert not (tmp_path / "bad").exists()


def test_entry_point_is_the_fast_exit():
    """``pyproject.toml``'s ``diffuse-fit`` script is :func:`diffuse_fit.cli.console_main`."""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["diffuse-fit"] == "diffuse_fit.cli:console_main"


def test_every_command_option_is_a_keyword_of_its_api_function():
    """The command line calls :mod:`diffuse_fit.api`; the two cannot drift apart: every option of a
    command (but the inputs', --fix (it goes into the specification) and --quiet) is a keyword of its API function, and every
    keyword of that function (but the inputs, progress and message channels) is an option."""
    import argparse
    import inspect

    from diffuse_fit import api
    from diffuse_fit.cli import INPUT_OPTIONS, SPEC_ONLY_OPTIONS, build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    functions = {"report": api.write_report, "spec": api.write_spec}
    for name, sub in commands.choices.items():
        options = {a.dest for a in sub._actions if a.dest != "help"} - {
            "quiet",
            "verbose",
            *INPUT_OPTIONS,
            *SPEC_ONLY_OPTIONS,
        }
        function = functions.get(name) or getattr(api, f"run_{name}")
        keywords = set(inspect.signature(function).parameters) - {
            "inputs",
            "say",
            "progressbar",
            "model",
        }
        assert options == keywords, (name, options ^ keywords)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["scan", "--param", "gamma=2:4:5"], "--param: unknown parameter 'gamma'"),
        (["toys", "--n", "2", "--truth", "gamma=2.5"], "--truth: unknown parameter 'gamma'"),
    ],
)
def test_unknown_parameter_names_are_refused_before_inputs_are_read(
    tmp_path, capsys, argv, message
):
    """The inputs named here do not exist: the names are checked first (exit 2, one line)."""
    missing = ["--data", str(tmp_path / "no-data.json"), "--sim", str(tmp_path / "no-sim.json")]
    assert main([*argv, *missing, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "no-data" not in err and len(err.strip().splitlines()) == 1


def test_every_seeded_command_has_the_same_default_seed():
    from diffuse_fit.cli import build_parser
    from diffuse_fit.inference.settings import SamplerSettings

    parser = build_parser()
    for argv in (["sample"], ["toys", "--n", "2"], ["sbc", "--n", "2"], ["compare"]):
        assert parser.parse_args(argv).seed == SamplerSettings().seed, argv


@pytest.mark.slow
def test_toys_print_seed_truth_and_dashboard(tmp_path, capsys):
    assert (
        main(
            [
                "toys",
                "--n",
                "2",
                "--workers",
                "1",
                "--truth",
                "astro_gamma=2.8",
                "--out",
                str(tmp_path / "toys"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "seed: 1" in out and "dashboard http" in out
    assert "astro_gamma=2.8\n" in out and "atmos_norm=1 (the inputs' truth)" in out


def test_messages_go_through_the_diffuse_fit_logger(tmp_path, capsys, caplog):
    """The command's lines are the ``diffuse_fit`` logger's INFO records (shown on stdout);
    --quiet hides them, --verbose keeps them; the API logs the same lines without a ``say``."""
    import logging

    import diffuse_fit as df

    out = tmp_path / "run"
    assert main(["map", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "finding the MAP ..." in printed and f"wrote {out / 'map.json'}" in printed
    assert main(["map", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["map", "--out", str(out), "--verbose"]) == 0
    assert "finding the MAP ..." in capsys.readouterr().out
    logger = logging.getLogger("diffuse_fit")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="diffuse_fit"):
            df.run_map(df.load_inputs(), tmp_path / "api")
    finally:
        logger.removeHandler(caplog.handler)
    lines = [r.getMessage() for r in caplog.records if r.name == "diffuse_fit"]
    assert "finding the MAP ..." in lines
