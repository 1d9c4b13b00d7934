"""The papermill runner: params injection, output location, and failing fast on bad params."""

import json
import subprocess
import sys

import pytest
import yaml

from ecgstudy import run_notebook

NOTEBOOK = '''# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
params: dict = {}  # injected by the runner

# %%
import json
from ecgstudy import config
from ecgstudy.paths import repo_root

cfg = config.stage_config("report", params)
(repo_root() / "seen.json").write_text(json.dumps({"params": params, "title": cfg.report.title}))
'''


@pytest.fixture
def tiny_repo(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 1, "report": {"title": "tiny"}}))
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "report.py").write_text(NOTEBOOK)
    monkeypatch.setenv("ECGSTUDY_ROOT", str(tmp_path))
    return tmp_path


def test_runner_injects_the_stage_sections_and_writes_the_executed_notebook(tiny_repo):
    output = run_notebook.run("report")
    assert output == tiny_repo / "reports" / "notebooks" / "report.ipynb"
    seen = json.loads((tiny_repo / "seen.json").read_text())
    assert seen == {"params": {"report": {"title": "tiny"}}, "title": "tiny"}
    executed = json.loads(output.read_text())
    assert any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in executed["cells"])
    assert not list((tiny_repo / "reports" / "notebooks").glob(".*input*"))


def test_mistyped_key_fails_before_running(tiny_repo, capsys):
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump({"seed": 1, "report": {"titel": "x"}}))
    assert run_notebook.main(["report"]) == 2
    err = capsys.readouterr().err
    assert "report.titel" in err and "title" in err
    assert not (tiny_repo / "seen.json").exists()
    assert not (tiny_repo / "reports" / "notebooks" / "report.ipynb").exists()


def test_unknown_stage_is_rejected():
    result = subprocess.run(
        [sys.executable, "-m", "ecgstudy.run_notebook", "finetuning"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr
