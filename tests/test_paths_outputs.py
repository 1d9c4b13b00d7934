"""Repository paths and stage output folders."""

import json
import math

import numpy as np
import pytest

from ecgstudy.stages import outputs
from ecgstudy import paths


def test_repo_root_found_from_a_subfolder(tmp_path, monkeypatch):
    monkeypatch.delenv("ECGSTUDY_ROOT", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    sub = tmp_path / "notebooks" / "deeper"
    sub.mkdir(parents=True)
    assert paths.repo_root(sub) == tmp_path.resolve()
    monkeypatch.chdir(sub)
    assert paths.resolve("data/curated") == tmp_path.resolve() / "data" / "curated"
    assert paths.resolve("/abs/x") == paths.Path("/abs/x")


def test_env_var_overrides_root(tmp_path, monkeypatch):
    monkeypatch.setenv("ECGSTUDY_ROOT", str(tmp_path))
    assert paths.repo_root("/") == tmp_path.resolve()


def test_bundled_resource_and_missing_resource():
    assert paths.resource("ptbxl_scp_statements.csv").is_file()
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        paths.resource("nope.csv")


def test_stage_outputs_layout_and_metrics_json(tmp_path):
    out = outputs.stage_outputs("finetune", root=tmp_path, models=True, plots=True)
    for folder in (out.figures, out.tables, out.models, out.plots):
        assert folder.is_dir()
    assert out.figure("curve") == tmp_path / "reports" / "figures" / "finetune" / "curve.png"
    path = out.write_metrics({"auroc": np.float32(0.87654321), "n": np.int64(3), "nan": math.nan, "nested": {"b": 1, "a": [0.5]}})
    assert path == tmp_path / "reports" / "metrics" / "finetune.json"
    assert json.loads(path.read_text()) == {"auroc": 0.8765, "n": 3, "nan": None, "nested": {"a": [0.5], "b": 1}}


def test_stage_outputs_creates_models_and_plots_only_on_request(tmp_path):
    out = outputs.stage_outputs("latent", root=tmp_path)
    assert not out.models.exists() and not out.plots.exists()
