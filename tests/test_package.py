"""The package as a user installs it: a wheel built from the repository, installed in a fresh virtual environment,
run from outside the repository (no editable install, no ``configs/`` folder at hand)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the user's environment: nothing of the repository on the path
CLEAN = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                           "--quiet", "-w", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("lightning_cam-*.whl")
    return built


def test_the_wheel_ships_the_type_hints_and_the_configs(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lightning_cam/py.typed" in names
    bundled = {Path(n).name for n in names if n.startswith("lightning_cam/configs/")}
    assert {p.name for p in (ROOT / "configs").glob("*.yaml")} == bundled and "shapes.yaml" in bundled


@pytest.mark.slow
def test_the_installed_wheel_fits_from_outside_the_repository(wheel: Path, tmp_path: Path) -> None:
    """A fresh environment with the wheel alone (its dependencies reached through a path file pointing at this
    environment's site-packages, whose own path files, the editable install among them, are not read), a fit by
    a bundled config's name, from a folder that holds nothing of the repository."""
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall",
                           "--quiet", str(wheel)], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=CLEAN)
    assert done.returncode == 0, done.stderr[-3000:]
    # after the install (pip would take this environment's editable install for the package itself)
    Path(purelib, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([str(python), "-c", "import lightning_cam, pathlib; p = pathlib.Path(lightning_cam.__file__)"
                            ".parent; print(p); print((p / 'py.typed').is_file())"], cwd=work, capture_output=True,
                           text=True, check=True, env=CLEAN).stdout.split()
    assert Path(where[0]).is_relative_to(env) and where[1] == "True", where
    args = ["fit", "--config", "shapes", "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false",
            "--trainer.enable_checkpointing=false", "--data.num_train=32", "--data.num_val=16", "--data.num_test=8",
            "--data.image_size=32", "--data.batch_size=16", "--model.channels=[8, 8]"]
    fit = subprocess.run([str(env / "bin" / "lightning-cam"), *args], cwd=work, capture_output=True, text=True,
                         timeout=600, env=CLEAN)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert list((work / "lightning_logs" / "shapes").glob("version_0/events.out.tfevents.*")), fit.stderr[-2000:]
