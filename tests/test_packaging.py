"""The distribution installs one namespace, ``ternlab``, and never the bare folder names."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("bitlinear", "train", "export", "inference", "evals", "conf")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (whl,) = out.glob("ternlab-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_has_only_the_ternlab_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"ternlab"}
    for sub in SUBPACKAGES:
        assert f"ternlab/{sub}/__init__.py" in names
    assert "ternlab/bitlinear/layer.py" in names
    assert any(n.startswith("ternlab/conf/") and n.endswith(".yaml") for n in names)
    assert any(n.startswith("ternlab/inference/_kernels") for n in names)  # compiled
    assert not [n for n in names if n.endswith((".cpp", ".h"))]  # sources stay in the sdist


@pytest.mark.slow
def test_regular_install_runs_the_command(wheel, tmp_path):
    # Install the wheel (not the editable source tree) into its own prefix, first on the path.
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = dict(capture_output=True, text=True, check=True, cwd=tmp_path, env=env)
    result = subprocess.run([str(target / "bin" / "ternlab"), "--help"], **run)
    assert "usage: ternlab" in result.stdout
    where = subprocess.run(
        [sys.executable, "-c", "import ternlab.bitlinear as b; print(b.__file__)"], **run
    )
    assert where.stdout.startswith(str(target))  # the installed copy, not the source tree
