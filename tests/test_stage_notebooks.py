"""The curate, latent and report notebooks only narrate, call their stage's ``run`` and display."""

import ast
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
#: Calls that write files or compute: they belong in ecgstudy/stages/<stage>.py, never in a notebook.
FORBIDDEN = {"to_csv", "to_parquet", "write_metrics", "write_text", "savefig", "stage_outputs", "write_tables",
             "plot_gallery", "plot_umap", "plot_probe_auroc", "build_report", "run_latent", "curate_cohort",
             "write_cohort", "interval_table", "curation_metrics"}


@pytest.mark.parametrize("stage", ["curate", "latent", "report"])
def test_notebook_calls_run_and_writes_nothing(stage):
    tree = ast.parse((NOTEBOOKS / f"{stage}.py").read_text())
    called = {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
              for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert "run" in called, f"notebooks/{stage}.py does not call {stage}.run"
    assert not called & FORBIDDEN, f"notebooks/{stage}.py calls {sorted(called & FORBIDDEN)}"
    imports = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and node.module == "ecgstudy.stages" for alias in node.names}
    assert imports == {stage}
    assert not any(isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.If, ast.While)) for node in ast.walk(tree))
