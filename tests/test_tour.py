"""The guided tour (notebooks/tour.py) executes under papermill: before the study has run (clear messages,
no error), on a partial set of outputs (what exists is shown, a new stage included), and on the tiny study."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import papermill
import pytest
import yaml

from ecgstudy import tour
from ecgstudy.paths import repo_root

# The end-to-end tiny study of test_pipeline.py; once `study` is a session fixture in conftest.py, this import
# fails and conftest's fixture (one pipeline run for both modules) takes over.
try:
    from test_pipeline import study  # noqa: F401
except ImportError:
    pass

ROOT = repo_root()


def _execute_tour(repo: Path, monkeypatch) -> list[dict]:
    """Run notebooks/tour.py of the source tree as JupyterLab would (kernel cwd: <repo>/notebooks, the repo
    found from there); return the executed cells."""
    monkeypatch.delenv("ECGSTUDY_ROOT", raising=False)
    monkeypatch.setenv("MPLBACKEND", "agg")
    (repo / "notebooks").mkdir(exist_ok=True)
    work = repo / "notebooks" / ".tour.input.ipynb"
    jupytext.write(jupytext.read(ROOT / "notebooks" / "tour.py"), work)
    try:
        result = papermill.execute_notebook(str(work), str(repo / "tour.ipynb"), kernel_name="python3",
                                            cwd=str(repo / "notebooks"), progress_bar=False)
    finally:
        work.unlink(missing_ok=True)
    return [c for c in result.cells if c.cell_type == "code"]


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts += [out.get("data", {}).get(k, "") for k in ("text/plain", "text/markdown")]
    return "".join(p if isinstance(p, str) else "".join(p) for p in parts)


def _images(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def _cell(cells, snippet: str):
    found = [c for c in cells if snippet in c.source]
    assert len(found) == 1, f"{len(found)} cells contain {snippet!r}"
    return found[0]


def _bare_repo(tmp_path: Path) -> Path:
    """A repository without any pipeline output: what a fresh clone looks like."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(ROOT / name, repo / name)
    shutil.copytree(ROOT / "reports" / "metrics", repo / "reports" / "metrics")  # committed, as in a clone
    shutil.copytree(ROOT / "notebooks", repo / "notebooks", ignore=shutil.ignore_patterns(".*"))
    return repo


#: The tour's figure cells, in order (the last one shows whatever the others did not).
FIGURE_CELLS = [
    'tour.show_figures(stages="curate")', 'tour.show_figures("*loss*"', 'tour.show_figures("probe_comparison*"',
    'tour.show_figures("*label_efficiency*"', 'tour.show_figures("transfer*"', 'tour.show_figures(stages="latent")',
    'tour.show_figures(stages="saliency")', "tour.show_other_figures()",
]


def test_tour_before_the_study_has_run_says_what_to_do(tmp_path, monkeypatch):
    repo = _bare_repo(tmp_path)
    cells = _execute_tour(repo, monkeypatch)
    first = _text(cells[0])
    assert "The study has not been run yet" in first and "make study" in first
    assert "[finetune.py](finetune.py)" in first and "not run yet" in first  # links, relative to notebooks/
    for snippet in FIGURE_CELLS[:-1]:
        text = _text(_cell(cells, snippet))
        assert "Not run yet: no figure matching" in text and ".venv/bin/dvc repro " in text, snippet
    assert ".venv/bin/dvc repro curate" in _text(_cell(cells, FIGURE_CELLS[0]))
    assert "No other figures" in _text(_cell(cells, FIGURE_CELLS[-1]))
    assert "Not run yet: no curated store" in _text(_cell(cells, "tour.open_store()"))
    assert "Not run yet: no table splits_by_site.csv" in _text(_cell(cells, 'tour.read_table("splits_by_site"'))
    assert "Set RUN = True" in _text(_cell(cells, "RUN = False"))
    assert sum(_images(c) for c in cells) == 0
    assert sorted(p.name for p in (repo / "reports").iterdir()) == ["metrics"]  # the tour wrote nothing


def _png(path: Path) -> None:
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot(np.arange(3))
    fig.savefig(path)


def test_tour_shows_what_exists_wherever_it_lives(tmp_path, monkeypatch):
    repo = _bare_repo(tmp_path)
    reports = repo / "reports"
    _png(reports / "figures" / "evaluate" / "label_efficiency.png")
    pd.DataFrame({"a": ["pretrained"], "b": ["scratch"], "metric": ["auroc"], "diff": [0.05]}).to_csv(
        _mkdir(reports / "tables" / "evaluate") / "finetune_comparisons.csv", index=False)
    (_mkdir(reports / "notebooks") / "finetune.ipynb").write_text("{}")
    _png(reports / "figures" / "newstage" / "calibration.png")  # a stage the tour has never heard of
    cells = _execute_tour(repo, monkeypatch)

    label_efficiency = _cell(cells, 'tour.show_figures("*label_efficiency*"')
    assert _images(label_efficiency) == 1
    assert "reports/figures/evaluate/label_efficiency.png" in _text(label_efficiency)
    assert "Macro AUROC against the fraction of training patients" in _text(label_efficiency)  # report caption
    assert "pretrained" in _text(_cell(cells, 'tour.read_table("finetune_comparisons"'))
    assert "Not run yet" in _text(_cell(cells, 'tour.show_figures(stages="latent")'))
    others = _cell(cells, "tour.show_other_figures()")
    assert _images(others) == 1 and "reports/figures/newstage/calibration.png" in _text(others)
    first = _text(cells[0])
    assert "Stages without outputs here yet: curate" in first
    assert "[finetune.ipynb](../reports/notebooks/finetune.ipynb)" in first and "| newstage |" in first


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_producer_follows_dvc_yaml(tmp_path):
    repo = tmp_path
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "finetune": {"cmd": "x", "outs": ["reports/tables/finetune"]},
        "evaluate": {"cmd": "x", "outs": ["reports/figures/evaluate", {"reports/tables/evaluate": {"cache": False}}]},
    }}, sort_keys=False))
    assert tour.producer(["finetune", "evaluate"], "figures", repo) == "evaluate"
    assert tour.producer(["evaluate", "finetune"], "tables", repo) == "finetune"
    assert tour.producer(["finetune", "gone"], "figures", repo) == "finetune"  # not a figure writer, but a stage
    assert tour.all_stages(repo) == ["finetune", "evaluate"]


def test_variant_command():
    cmd = tour.variant_command(["latent.umap_neighbors=50", "latent.umap_min_dist=0.5"])
    assert cmd[1:] == ["exp", "run", "-S", "latent.umap_neighbors=50", "-S", "latent.umap_min_dist=0.5"]
    assert Path(cmd[0]).name == "dvc"
    assert tour.variant_command(["a.b=1"], temp=True)[1:4] == ["exp", "run", "--temp"]


def test_ecg_draws_from_another_split_when_the_asked_one_has_no_case(tmp_path, capsys):
    from _store_builder import build_store
    from ecgstudy.data.store import Store

    store = Store(build_store(tmp_path / "s", 80))
    cases = store.label_matrix(["CLBBB"])[:, 0] == 1
    store.records.loc[cases & (store.records["split"] == "test").to_numpy(), "split"] = "train"  # no test case left
    absent = "test"
    shown = tour.ecg(store, "CLBBB", split=absent)
    assert shown is not None and shown.data[:4] == b"\x89PNG"
    assert f"No record of split {absent!r} is reported as CLBBB; drawing one from any split" in capsys.readouterr().out
    assert tour.ecg(store, "NOPE") is None and "not a label of this store" in capsys.readouterr().out


@pytest.mark.slow
def test_tour_on_the_tiny_study(study, monkeypatch):
    cells = _execute_tour(study, monkeypatch)
    text = "".join(_text(c) for c in cells)
    assert "Not run yet" not in text and "not been run yet" not in text
    on_disk = sorted((study / "reports" / "figures").glob("*/*.png"))
    assert on_disk
    shown = [_images(_cell(cells, snippet)) for snippet in FIGURE_CELLS]
    assert all(shown[:-1]), dict(zip(FIGURE_CELLS, shown))  # every section has its figures
    assert sum(shown) == len(on_disk)  # and every figure appears exactly once
    assert "Store(" in _text(_cell(cells, "tour.open_store()"))
    assert _images(_cell(cells, 'CODE = "')) == 1  # one ECG drawn from the curated store
    for snippet in ('tour.read_table("probe_comparison"', 'tour.read_table("finetune_comparisons"',
                    'tour.read_table("transfer_comparisons"'):
        assert _text(_cell(cells, snippet)).startswith("reports/tables/"), snippet  # the table's path, then it


@pytest.mark.slow
def test_the_tours_variant_runs_and_the_way_back_restores_the_study(study, tmp_path):
    """Section 8 as a student runs it: the tour's VARIANT through `dvc exp run` (on a copy of the study), then
    the way back the tour gives: `git checkout params.yaml dvc.lock && dvc checkout dvc.yaml`."""
    notebook = jupytext.read(ROOT / "notebooks" / "tour.py")
    source = next(c.source for c in notebook.cells if c.source.startswith("VARIANT = "))
    variant = ast.literal_eval(source.splitlines()[0].split("=", 1)[1].split("#")[0].strip())
    repo = Path(shutil.copytree(study, tmp_path / "study", symlinks=True))
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    env.pop("ECGSTUDY_ROOT", None)

    def run(*cmd: str) -> None:
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True, text=True)

    run("git", "add", "-A", "dvc.lock", "params.yaml")
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "reproduced", "--allow-empty")
    figures = sorted((repo / "reports" / "figures").glob("*/*.png"))
    before = {f: f.read_bytes() for f in figures}
    stage, key = variant[0].split("=")[0].split(".")[:2]
    result = subprocess.run(tour.variant_command(variant), cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Running stage '{stage}'" in result.stdout and "Running stage 'curate'" not in result.stdout
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert str(params[stage][key]) == variant[0].split("=", 1)[1]
    changed = {f for f in figures if f.read_bytes() != before[f]}
    assert changed and all(f.parent.name == stage for f in changed)  # only the varied stage's figures moved
    run("git", "checkout", "params.yaml", "dvc.lock")
    run(str(Path(sys.executable).parent / "dvc"), "checkout", "dvc.yaml")
    assert all(f.read_bytes() == before[f] for f in figures)


def _dotted(params: dict, key: str) -> bool:
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_try_this_names_real_params():
    """Each `dvc exp run -S key=value` the tour suggests (and its VARIANT cell) sets a key params.yaml has."""
    text = (ROOT / "notebooks" / "tour.py").read_text()
    keys = re.findall(r"-S '?([A-Za-z_][\w.]*)=", text)
    keys += re.findall(r'"([a-z_]+\.[\w.]+)=', text)  # VARIANT = ["latent.umap_neighbors=50", ...]
    assert len(keys) >= 7
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert [k for k in keys if not _dotted(params, k)] == []
