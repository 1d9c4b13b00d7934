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


RERUN_NOTEBOOK = NOTEBOOK + '''
# %%
import sys, time
for i in range(3):  # a text progress bar (tqdm redraws with carriage returns) and a clock value
    sys.stderr.write(f"\\rbar {i}/3 [{time.perf_counter():.6f}s]")
sys.stderr.write("\\n")
sys.stderr.write("UserWarning: kept\\n")
print(repo_root() / "data" / "store", time.perf_counter() > 0)
'''


def test_a_rerun_writes_the_same_executed_notebook_and_timings_beside_it(tiny_repo):
    (tiny_repo / "notebooks" / "report.py").write_text(RERUN_NOTEBOOK)
    first = run_notebook.run("report").read_bytes()
    second = run_notebook.run("report").read_bytes()
    assert first == second  # no clock metadata, no bar redraws, no machine path
    executed = json.loads(second)
    text = json.dumps(executed)
    assert str(tiny_repo) not in text and "start_time" not in text and "bar 0/3" not in text
    streams = "".join("".join(o["text"]) for c in executed["cells"] for o in c.get("outputs", [])
                      if o["output_type"] == "stream")
    assert "UserWarning: kept" in streams and "data/store True" in streams
    timings = json.loads((tiny_repo / "reports" / "timings" / "report.json").read_text())
    assert set(timings) == {"notebook_seconds"} and timings["notebook_seconds"] >= 0
