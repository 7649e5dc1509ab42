"""The lazily completed ``arviz`` module of the ``diffuse-fit`` executable
(:mod:`diffuse_fit.inference.lazy_arviz`): the same names as ``import arviz``, matplotlib only on
first use of a plotting name.  Each check runs in a fresh interpreter (it is about
``sys.modules``)."""

import json
import subprocess
import sys


def python(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


NAMESPACE = (
    "import arviz\n"
    "names = sorted(n for n in dir(arviz) if not n.startswith('_'))\n"
    "out['version'] = arviz.__version__\n"
    "out['names'] = names\n"
    "out['same_objects'] = all(\n"
    "    getattr(arviz, n) is getattr(sys.modules[m], n)\n"
    "    for m in ('arviz_base', 'arviz_stats')\n"
    "    for n in getattr(sys.modules[m], '__all__', dir(sys.modules[m]))\n"
    "    if n in names\n"
    ")\n"
)


def test_installed_arviz_defers_plots_then_equals_plain_arviz():
    lazy = python(
        "import json, sys\n"
        "from diffuse_fit.inference import lazy_arviz\n"
        "out = {'installed': lazy_arviz.install()}\n"
        "import arviz, arviz_base, arviz_stats\n"
        "out['base'] = arviz.from_dict is arviz_base.from_dict\n"
        "out['stats'] = arviz.summary is arviz_stats.summary\n"
        "out['plots_before'] = 'arviz_plots' in sys.modules or 'matplotlib' in sys.modules\n"
        "out['plot'] = arviz.plot_dist is sys.modules['arviz_plots'].plot_dist\n"
        + NAMESPACE
        + "out['again'] = lazy_arviz.install()\n"
        "print(json.dumps(out))\n"
    )
    plain = python("import json, sys\nout = {}\n" + NAMESPACE + "print(json.dumps(out))\n")
    assert lazy["installed"] and not lazy["again"]
    assert lazy["base"] and lazy["stats"] and lazy["plot"] and lazy["same_objects"]
    assert not lazy["plots_before"]
    assert lazy["version"] == plain["version"]
    assert lazy["names"] == plain["names"]


def test_sample_job_imports_no_matplotlib(tmp_path):
    """A ``sample`` job with the lazy ``arviz`` (as the executable runs it): nutpie's
    conversion and the summary work, and matplotlib is never imported."""
    out = tmp_path / "run"
    result = python(
        "import json, sys\n"
        "from diffuse_fit.inference import lazy_arviz\n"
        "lazy_arviz.install()\n"
        "from diffuse_fit.cli import main\n"
        f"status = main(['sample', '--draws', '200', '--tune', '200', '--chains', '2',\n"
        f"               '--out', {str(out)!r}, '--quiet'])\n"
        "print(json.dumps({'status': status, 'matplotlib': 'matplotlib' in sys.modules}))\n"
    )
    assert result == {"status": 0, "matplotlib": False}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diagnostics"]["divergences"] == 0
    assert set(summary["parameters"]) == {"atmos_norm", "astro_norm", "astro_gamma"}


def test_install_imports_nothing():
    """Installing imports neither ArviZ package (``diffuse-fit --help`` stays light)."""
    result = python(
        "import json, sys\n"
        "from diffuse_fit.inference import lazy_arviz\n"
        "lazy_arviz.install()\n"
        "print(json.dumps(sorted(m for m in ('arviz_base', 'arviz_stats', 'xarray', 'scipy')\n"
        "                        if m in sys.modules)))\n"
    )
    assert result == []


def test_executable_sample_job_imports_no_matplotlib(tmp_path):
    """``diffuse-fit sample`` (the executable's entry, :func:`diffuse_fit.cli.console_main`, which
    installs the lazy ``arviz``) never imports matplotlib: ``-X importtime`` lists every
    module the process imported."""
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "diffuse_fit.cli",
            "sample",
            "--draws",
            "100",
            "--tune",
            "100",
            "--chains",
            "2",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert {"nutpie", "arviz_base", "arviz_stats"} <= imported
    assert not {m for m in imported if m.split(".")[0] in ("matplotlib", "arviz_plots")}
    assert (tmp_path / "run" / "posterior.nc").is_file()
