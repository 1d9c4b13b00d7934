"""The README's reviewer commands, executed literally in a fresh clone of the tiny study without an active venv.

Each fenced block after a ``<!-- reviewer-commands -->`` line in README.md runs, in order, as one bash script
(``set -e``) in a ``git clone`` of the tiny study (the session fixture ``study``, whose results are committed
in the clone and whose DVC cache it shares, as after ``make study``). The shell's PATH lacks the venv and no
environment variable points at it: the Makefile and ``bin/stage`` must find the project's Python
themselves. Checks: a forced rerun of a training stage leaves ``git status`` and ``dvc metrics diff`` empty,
a variant of ``saliency`` reruns only ``saliency`` and its descendants (``evaluate``, ``report``), a temporary
experiment changing a statistics setting runs only ``evaluate`` and ``report`` (every other output restored from
the cache in the temporary copy).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ecgstudy.paths import repo_root

pytestmark = pytest.mark.slow

MARK = "<!-- reviewer-commands -->"


def reviewer_blocks(readme: str) -> list[str]:
    """The bash blocks that directly follow a reviewer mark, in README order."""
    return re.findall(re.escape(MARK) + r"\s*\n```bash\n(.*?)```", readme, flags=re.S)


def _user_env(venv_bin: Path) -> dict:
    """The environment of a user's shell where the venv is not activated."""
    drop = {"VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "MPLBACKEND"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("ECGSTUDY_")}
    keep = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != venv_bin.resolve()]
    env["PATH"] = os.pathsep.join(keep or ["/usr/bin", "/bin"])
    return env


def _sh(cmd: str, cwd: Path, env: dict) -> str:
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", cmd], cwd=cwd, env=env, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise AssertionError(f"{cmd!r} failed ({result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return result.stdout + result.stderr


def _linked_venv(clone: Path) -> None:
    """``.venv`` in the clone: the test interpreter's venv by symlinks, with its own install stamp (no pip)."""
    venv = clone / ".venv"
    venv.mkdir()
    for entry in Path(sys.prefix).iterdir():
        if not entry.name.startswith("."):
            (venv / entry.name).symlink_to(entry)
    (venv / ".installed").touch()  # newer than the clone's pyproject.toml: make does not reinstall


def uncached_outputs(dvc_yaml: Path) -> list[str]:
    """The outputs and metrics that dvc.yaml leaves to git (``cache: false``): what a study's commit holds."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    paths = []
    for stage in stages.values():
        for entry in stage.get("outs", []) + stage.get("metrics", []):
            if isinstance(entry, dict):
                paths += [path for path, options in entry.items() if options.get("cache") is False]
    return paths


def running(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


def pipeline_changes(status: str) -> set[str]:
    """Stages `dvc status` lists as changed (data.dvc, a placeholder for real datasets, aside)."""
    return {line.strip().rstrip(":") for line in status.splitlines()
            if line and not line.startswith(("\t", " ")) and "up to date" not in line} - {"data.dvc"}


def test_readme_has_the_reviewer_blocks():
    blocks = reviewer_blocks((repo_root() / "README.md").read_text())
    assert len(blocks) == 4
    assert any("make exp" in b and "--temp" in b for b in blocks) and any("dvc metrics diff" in b for b in blocks)


@pytest.fixture(scope="module")
def reviewer(study, tmp_path_factory):
    """Clone the tiny study, commit its results, share its cache; run every reviewer block. Returns the record."""
    venv_bin = Path(sys.executable).parent
    clone = tmp_path_factory.mktemp("reviewer") / "ecgstudy"
    subprocess.run(["git", "clone", "-q", str(study), str(clone)], check=True)
    committed = ["dvc.lock"] + uncached_outputs(clone / "dvc.yaml")  # the fixture's commit has none of them
    for name in committed:
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(study / name, clone / name)
    git = ["git", "-c", "user.name=reviewer", "-c", "user.email=r@example.org"]
    subprocess.run(["git", "add", *committed], cwd=clone, check=True)
    subprocess.run(git + ["commit", "-qm", "tiny study results"], cwd=clone, check=True)
    subprocess.run(["git", "config", "user.name", "reviewer"], cwd=clone, check=True)  # dvc exp commits
    subprocess.run(["git", "config", "user.email", "r@example.org"], cwd=clone, check=True)
    (clone / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {study / '.dvc' / 'cache'}\n")
    _linked_venv(clone)
    env = _user_env(venv_bin)
    dvc = str(clone / ".venv" / "bin" / "dvc")
    record = []
    for block in reviewer_blocks((clone / "README.md").read_text()):
        output = _sh(block, clone, env)
        record.append({"block": block, "output": output,
                       "git_status": _sh("git status --porcelain", clone, env),
                       "metrics_diff": _sh(f"{dvc} metrics diff", clone, env),
                       "dvc_status": _sh(f"{dvc} status", clone, env)})
    return {"clone": clone, "env": env, "blocks": record}


def test_a_fresh_clone_restores_from_the_cache_and_a_forced_rerun_changes_nothing(reviewer):
    first = reviewer["blocks"][0]
    assert "make repro\n" in first["block"] and "-f -s" in first["block"]
    assert running(first["output"]) == {"finetune"}, first["output"][-3000:]  # the rest came from the run cache
    assert first["git_status"] == "", first["git_status"]  # dvc.lock and metrics: the same bytes
    assert first["metrics_diff"].strip() == "", first["metrics_diff"]
    assert not pipeline_changes(first["dvc_status"]), first["dvc_status"]


def test_a_variant_reruns_only_saliency_and_its_descendants_and_shows_its_differences(reviewer):
    variant = reviewer["blocks"][1]
    assert "-S saliency." in variant["block"]
    assert running(variant["output"]) == {"saliency", "evaluate", "report"}, variant["output"][-3000:]
    assert "saliency.json" in variant["output"]  # dvc metrics diff: the smoothing window changed the scores
    assert (reviewer["clone"] / "dvc_plots" / "index.html").is_file()
    back = reviewer["blocks"][2]
    assert back["git_status"] == "" and back["metrics_diff"].strip() == "", back
    assert not pipeline_changes(back["dvc_status"]), back["dvc_status"]


def test_a_temporary_experiment_touching_evaluate_runs_only_evaluate_and_the_report(reviewer):
    temp = reviewer["blocks"][3]
    assert "--temp" in temp["block"] and "-S evaluate." in temp["block"]
    assert running(temp["output"]) == {"evaluate", "report"}, temp["output"][-3000:]
    assert temp["git_status"] == "", temp["git_status"]  # the workspace is untouched
    assert not pipeline_changes(temp["dvc_status"]), temp["dvc_status"]


def test_no_executed_notebook_shows_a_wall_clock_column(study):
    """The forced rerun above covers finetune; every stage's executed notebook (a DVC output) must be as
    repeatable: none displays a table with a timing column (they belong in reports/timings/<stage>.json)."""
    import nbformat

    from ecgstudy.stages.outputs import TIMING_COLUMNS

    shown = []
    for path in sorted((study / "reports" / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for output in cell.get("outputs", []):
                html = output.get("data", {}).get("text/html", "")
                shown += [(path.name, c) for c in TIMING_COLUMNS if f"<th>{c}</th>" in html]
    assert not shown, shown
