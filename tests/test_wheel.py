"""The built wheel: it holds the package and the shipped models and nothing of the tests, and
installed into a fresh virtual environment (PyTorch from pip's cache) it lists the methods and
serves a small request on digits."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import amnesiac

ROOT = Path(__file__).resolve().parents[1]
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]  # the Makefile's pins


def _run(cmd: list[str], cwd: Path, timeout: int = 900) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          str(ROOT), "-w", str(out)], ROOT)  # fmt: skip
    (whl,) = out.glob("amnesiac-*.whl")
    return whl


def test_the_wheel_holds_the_package_and_the_models_and_no_tests(wheel: Path):
    assert wheel.name.startswith(f"amnesiac-{amnesiac.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "amnesiac/__init__.py" in names and "amnesiac/py.typed" in names
    weights = [n for n in names if n.startswith("amnesiac/models/weights/")]
    assert {Path(n).name for n in weights} >= {
        "fashion-mnist-resnet20.safetensors",
        "fashion-mnist-resnet20-ready.safetensors",
    }
    assert not [n for n in names if re.match(r"(tests|benchmarks|docs)/", n) or "conftest" in n]
    assert wheel.stat().st_size < 10 * 2**20


def test_the_wheel_installs_into_a_fresh_environment_and_serves_a_request(wheel, tmp_path):
    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    py = str(env / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", *TORCH], tmp_path)
    _run([py, "-m", "pip", "install", "-q", str(wheel)], tmp_path)
    amnesiac_cli = str(env / "bin" / "amnesiac")
    assert _run([amnesiac_cli, "--version"], tmp_path).strip() == f"amnesiac {amnesiac.__version__}"
    assert "l2ul" in _run([amnesiac_cli, "methods"], tmp_path)
    out = _run([amnesiac_cli, "unlearn", "--dataset", "digits", "--forget", "random:4:0",
                "--out", "u.safetensors", "--no-progress"], tmp_path)  # fmt: skip
    assert "D_f (forget)" in out and (tmp_path / "u.safetensors").is_file()
    # the installed package is the wheel's, not this checkout's
    where = _run([py, "-c", "import amnesiac; print(amnesiac.__file__)"], tmp_path)
    assert str(env) in where
