"""Run one stage's notebook with papermill: ``python -m ecgstudy.run_notebook <stage>``.

Reads params.yaml from the repository root, validates every section (a mistyped key fails here, before
any work), converts ``notebooks/<stage>.py`` (jupytext py:percent) to a notebook and executes it with
the stage's sections injected as the ``params`` parameter. The executed copy is written to
``reports/notebooks/<stage>.ipynb``, normalised so that a faithful rerun writes the same bytes
(``ecgstudy.executed_notebook``); the run's wall-clock time is added to ``reports/timings/<stage>.json``
(untracked, beside the stage's own timings).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ecgstudy import config, executed_notebook
from ecgstudy.paths import repo_root

def check_dvc_params(stage: str, raw: dict, root: Path) -> None:
    """Fail when dvc.yaml does not track a params.yaml key the stage reads (DVC would not rerun it when
    that key changes), e.g. after pointing ``finetune.optim`` at another optimiser preset."""
    import yaml

    stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages") or {}
    if stage not in stages:
        return  # run outside a DVC pipeline (e.g. a scratch copy): nothing to keep in step
    listed = set(stages[stage].get("params") or [])
    untracked = sorted(k for k in config.tracked_keys(stage, raw)
                       if not any(k == t or k.startswith(t + ".") for t in listed))
    if untracked:
        raise config.ConfigError(f"dvc.yaml stage {stage!r} does not track {untracked}, which the stage reads: add "
                                 "them under its params: (else DVC would not rerun it when they change)")


def run(stage: str, params_file: Path | None = None, kernel: str | None = None) -> Path:
    """Execute ``notebooks/<stage>.py`` and return the executed notebook's path."""
    import jupytext
    import papermill

    root = repo_root()
    path, raw = config.load_raw(params_file)
    params = config.resolve_layout(raw, str(path))
    config.validate_all(params)
    check_dvc_params(stage, raw, root)
    injected = config.stage_sections(stage, params)
    source = root / "notebooks" / f"{stage}.py"
    if not source.is_file():
        raise FileNotFoundError(f"notebook for stage {stage!r} not found: {source}")
    out_dir = root / "reports" / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)  # papermill does not create folders
    work = out_dir / f".{stage}.input.ipynb"
    jupytext.write(jupytext.read(source), work)
    output = out_dir / f"{stage}.ipynb"
    running = out_dir / f".{stage}.running.ipynb"  # the last good executed copy stays until this one succeeds
    os.environ.setdefault("MPLBACKEND", "agg")
    os.environ["ECGSTUDY_ROOT"] = str(root)
    timings = root / "reports" / "timings" / f"{stage}.json"
    timings.unlink(missing_ok=True)  # the stage writes this run's, if it times anything
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(work),
            str(running),
            parameters={"params": injected},
            kernel_name=kernel or "python3",
            cwd=str(root),
            progress_bar=False,
            log_output=True,
        )
        _normalise(running, root)
        running.replace(output)
        (out_dir / f"{stage}.failed.ipynb").unlink(missing_ok=True)  # a later success supersedes it
    except BaseException:
        if running.exists():  # keep the failed run for inspection beside the last good one
            running.replace(out_dir / f"{stage}.failed.ipynb")
        raise
    finally:
        work.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    _add_timing(timings, seconds)
    print(f"[{stage}] executed in {seconds:.1f} s -> {output.relative_to(root)} (timings: {timings.relative_to(root)})")
    return output


def _normalise(path: Path, root: Path) -> None:
    """Rewrite an executed notebook without its run-specific content (``ecgstudy.executed_notebook``)."""
    import nbformat

    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.write(executed_notebook.normalise(nb, root), path)


def _add_timing(path: Path, seconds: float) -> None:
    """Add the notebook's wall-clock time to the stage's timings file (created if the stage wrote none)."""
    timings = json.loads(path.read_text()) if path.is_file() else {}
    timings["notebook_seconds"] = round(seconds, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timings, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=list(config.STAGE_SECTIONS))
    parser.add_argument("--params", type=Path, default=None, help="params file (default: repo params.yaml)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: python3)")
    args = parser.parse_args(argv)
    try:
        run(args.stage, args.params, args.kernel)
    except config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
