"""Executed notebooks without run-specific content (clock metadata, cell ids, bar redraws, the repository's path)."""

from pathlib import Path

from ecgstudy.executed_notebook import normalise

ROOT = Path("/somewhere/ecgstudy")


def _notebook() -> dict:
    clock = {"start_time": "2026-01-01T00:00:00", "end_time": "2026-01-01T00:00:01", "duration": 1.0}
    return {
        "metadata": {"papermill": {**clock, "input_path": f"{ROOT}/in.ipynb", "output_path": f"{ROOT}/out.ipynb",
                                   "parameters": {"params": {"seed": 1}}, "exception": None}},
        "cells": [
            {"cell_type": "markdown", "id": "9b77bb76", "metadata": {}, "source": "# title"},
            {"cell_type": "code", "id": "35a087f5", "execution_count": 1, "source": "run()",
             "metadata": {"execution": {"iopub.status.busy": "2026-01-01T00:00:00Z"},
                          "papermill": {**clock, "status": "completed", "exception": False}},
             "outputs": [
                 {"output_type": "stream", "name": "stderr", "text": "\rtrain 1/2:   0%| [00:00<?, sps=142]"},
                 {"output_type": "stream", "name": "stderr", "text": ["\r", "\n"]},
                 {"output_type": "stream", "name": "stderr", "text": "\rtrain 2/2 50%\nwarning: kept\n"},
                 {"output_type": "stream", "name": "stdout", "text": f"{ROOT}/reports/report.html: 0.9 MB\n"},
                 {"output_type": "execute_result", "execution_count": 1, "metadata": {},
                  "data": {"text/plain": [f"Store('{ROOT}/data/curated/main', n=3)"], "image/png": "iVBORw0K"}},
                 {"output_type": "stream", "name": "stdout", "text": f"root {ROOT}, other {ROOT}2/x\n"},
             ]},
        ],
    }


def test_clock_metadata_and_absolute_input_paths_are_removed_parameters_kept():
    nb = normalise(_notebook(), ROOT)
    assert nb["metadata"]["papermill"] == {"parameters": {"params": {"seed": 1}}, "exception": None}
    code = nb["cells"][1]
    assert [c["id"] for c in nb["cells"]] == ["cell-0", "cell-1"]  # random ids -> by position
    assert code["metadata"] == {"papermill": {"status": "completed", "exception": False}}
    assert code["execution_count"] == 1


def test_bar_redraws_go_warnings_stay_and_the_repository_path_is_shown_relative():
    outputs = normalise(_notebook(), ROOT)["cells"][1]["outputs"]
    texts = [o.get("text") for o in outputs if o["output_type"] == "stream"]
    assert texts == ["warning: kept\n", "reports/report.html: 0.9 MB\n", f"root ., other {ROOT}2/x\n"]
    result = next(o for o in outputs if o["output_type"] == "execute_result")
    assert result["data"] == {"text/plain": "Store('data/curated/main', n=3)", "image/png": "iVBORw0K"}


def test_normalising_twice_changes_nothing_more():
    once = normalise(_notebook(), ROOT)
    assert normalise(normalise(_notebook(), ROOT), ROOT) == once
