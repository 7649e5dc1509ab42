"""A full disk while a run's files are written: one line naming the file and the device,
exit status 2, the earlier run intact, no staging folder left behind."""

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffuse_fit.cli import main
from diffuse_fit.io import run_folder as rf
from diffuse_fit.io.write_errors import mount_point

HDF5_FULL = (
    "Can't close file (file write failed: time = ..., filename = 'x/posterior.nc', "
    "file descriptor = 3, errno = 28, error message = 'No space left on device', "
    "total write size = 95)\n, second line"
)


def _leftovers(out: Path) -> list[str]:
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _full(exc):
    def writer(*args, **kwargs):
        raise exc

    return writer


FAILURES = {
    "hdf5": lambda: RuntimeError(HDF5_FULL),  # h5py on a full disk
    "enospc": lambda: OSError(errno.ENOSPC, "No space left on device", "/x/.r.staging-1-0/y"),
    "edquot": lambda: OSError(errno.EDQUOT, "Disk quota exceeded"),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("how", ["write_with", "write_netcdf", "write_bytes"])
def test_full_disk_in_any_writer_is_one_clean_oserror(tmp_path, monkeypatch, failure, how):
    import xarray as xr

    out = tmp_path / "run"
    with rf.write_run(out, "map") as stage:
        stage.write_json("map.json", {"tag": "first"})
    before = _snapshot(out)
    with pytest.raises(OSError) as caught, rf.write_run(out, "map") as stage:
        stage.write_json("map.json", {"tag": "second"})
        if how == "write_with":
            stage.write_with("figure.png", _full(FAILURES[failure]()))
        else:
            monkeypatch.setattr(Path, "write_bytes", _full(FAILURES[failure]()))
            if how == "write_bytes":
                stage.write_bytes("posterior.nc", b"data")
            else:
                stage.write_netcdf("posterior.nc", xr.Dataset({"a": ("x", [1.0, 2.0])}))
    monkeypatch.undo()
    exc = caught.value
    assert exc.errno == errno.ENOSPC
    assert exc.filename.startswith(str(out.resolve()) + os.sep) and ".staging" not in exc.filename
    assert f"no space left on the device mounted at '{mount_point(tmp_path)}'" in exc.strerror
    assert "bytes free" in exc.strerror and "\n" not in exc.strerror
    assert _snapshot(out) == before and _leftovers(out) == []


def test_other_writer_error_is_one_line_oserror(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(OSError) as caught, rf.write_run(out, "map") as stage:
        stage.write_json("map.json", {})
        stage.write_with("f.png", _full(RuntimeError("HDF5: something else\nmore")))
    assert caught.value.strerror == "HDF5: something else" and _leftovers(out) == []
    assert not out.exists()


def test_full_disk_on_the_command_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(["map", "--prior", "flat", "--out", str(out), "--quiet"]) == 0
    before = _snapshot(out)
    monkeypatch.setattr(Path, "write_bytes", _full(OSError(errno.ENOSPC, "No space left")))
    assert main(["map", "--prior", "flat", "--out", str(out), "--quiet"]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"diffuse-fit: error: cannot write '{out.resolve() / 'map.json'}': "
        "no space left on the device mounted at"
    )
    assert _snapshot(out) == before and _leftovers(out) == []


def _small_tmpfs(path: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


def test_sample_on_a_300k_tmpfs(tmp_path):
    """The issue's reproduction, where mounting is allowed (root): posterior.nc does not fit."""
    disk = tmp_path / "disk"
    if not _small_tmpfs(disk):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        out = disk / "r"
        base = [sys.executable, "-m", "diffuse_fit.cli"]
        first = subprocess.run(
            [*base, "map", "--prior", "flat", "--quiet", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert first.returncode == 0, first.stderr
        before = _snapshot(out)
        argv = [
            *base,
            "sample",
            "--prior",
            "flat",
            "--seed",
            "1",
            "--draws",
            "300",
            "--tune",
            "300",
            "--quiet",
            "--out",
            str(out),
        ]
        run = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        assert run.returncode == 2, run.stderr
        assert run.stderr.count("\n") == 1, run.stderr
        assert f"no space left on the device mounted at '{disk}'" in run.stderr
        assert _snapshot(out) == before and _leftovers(out) == []
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
