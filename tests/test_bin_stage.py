"""bin/stage, dvc.yaml's stage command: finds the project's Python however DVC is started, or says what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ecgstudy.paths import repo_root

STAGE = repo_root() / "bin" / "stage"


def _python_at(path: Path) -> Path:
    """An executable ``path`` that runs the test interpreter (a stand-in for a venv's python)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    path.chmod(0o755)
    return path


def _repo(base: Path) -> Path:
    """A folder holding a copy of bin/stage (the rest of a repository does not matter for finding Python)."""
    (base / "bin").mkdir(parents=True)
    shutil.copy2(STAGE, base / "bin" / "stage")
    return base


@pytest.fixture
def bare_path(tmp_path) -> str:
    """PATH whose python3 / python lack the dependencies (as a system Python does)."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    for name in ("python3", "python"):
        (fake / name).write_text("#!/bin/sh\nexit 1\n")
        (fake / name).chmod(0o755)
    return f"{fake}{os.pathsep}/usr/bin{os.pathsep}/bin"


def _which(stage: Path, path: str, **extra: str) -> subprocess.CompletedProcess:
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **extra}
    return subprocess.run([str(stage), "--which"], env=env, capture_output=True, text=True)


def test_bin_stage_is_committed_executable():
    mode = subprocess.run(["git", "ls-files", "-s", "bin/stage"], cwd=repo_root(), capture_output=True,
                          text=True, check=True).stdout.split()[0]
    assert mode == "100755"


def test_the_repository_venv_is_found_without_it_on_path(tmp_path, bare_path):
    repo = _repo(tmp_path / "repo")
    venv_python = _python_at(repo / ".venv" / "bin" / "python")
    result = _which(repo / "bin" / "stage", bare_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(venv_python)


def test_a_temporary_experiment_copy_finds_the_venv_of_the_repository_above_it(tmp_path, bare_path):
    repo = tmp_path / "repo"
    venv_python = _python_at(repo / ".venv" / "bin" / "python")
    copy = _repo(repo / ".dvc" / "tmp" / "exps" / "tmpabc123")  # where `dvc exp run --temp` runs
    result = _which(copy / "bin" / "stage", bare_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(venv_python)


def test_an_active_conda_environment_is_used_when_there_is_no_venv(tmp_path, bare_path):
    repo = _repo(tmp_path / "repo")
    conda_python = _python_at(tmp_path / "conda" / "envs" / "ecgstudy" / "bin" / "python")
    result = _which(repo / "bin" / "stage", bare_path, CONDA_PREFIX=str(conda_python.parent.parent))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(conda_python)


def test_no_usable_python_fails_saying_what_to_do(tmp_path, bare_path):
    repo = _repo(tmp_path / "repo")
    result = _which(repo / "bin" / "stage", bare_path)
    assert result.returncode == 1 and result.stdout == ""
    assert "make venv" in result.stderr and "ECGSTUDY_PYTHON" in result.stderr and str(repo) in result.stderr


def test_a_broken_explicit_interpreter_is_refused_by_name(tmp_path, bare_path):
    repo = _repo(tmp_path / "repo")
    _python_at(repo / ".venv" / "bin" / "python")  # would work, but the explicit choice wins
    result = _which(repo / "bin" / "stage", bare_path, ECGSTUDY_PYTHON=str(tmp_path / "nope" / "python"))
    assert result.returncode == 1 and "ECGSTUDY_PYTHON" in result.stderr and "nope" in result.stderr


def test_the_stage_runner_starts_through_the_wrapper(tmp_path, bare_path):
    result = subprocess.run([str(STAGE), "--help"], env={"PATH": bare_path, "ECGSTUDY_PYTHON": sys.executable},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "stage" in result.stdout and "--params" in result.stdout
