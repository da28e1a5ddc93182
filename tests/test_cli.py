"""The ``ternlab`` console command."""

import subprocess
import sys
from pathlib import Path

import ternlab
from ternlab.bitlinear import SPEC_VERSION
from ternlab.cli import main

BIN = Path(sys.executable).parent


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: ternlab" in out and "version" in out


def test_version_prints_package_and_spec(capsys):
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert f"ternlab {ternlab.__version__}" in out
    assert f"quantization spec {SPEC_VERSION}" in out


def test_console_script_is_installed():
    exe = BIN / "ternlab"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "usage: ternlab" in result.stdout


def test_python_dash_m():
    result = subprocess.run(
        [sys.executable, "-m", "ternlab", "version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("ternlab ")


def test_unknown_command_fails_clearly():
    result = subprocess.run(
        [sys.executable, "-m", "ternlab", "trian"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "invalid choice: 'trian'" in result.stderr
