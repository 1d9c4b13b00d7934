"""Run one stage's notebook with papermill: ``python -m ecgstudy.run_notebook <stage>``.

Reads params.yaml from the repository root, validates every section (a mistyped key fails here, before
any work), converts ``notebooks/<stage>.py`` (jupytext py:percent) to a notebook and executes it with
the stage's sections injected as the ``params`` parameter. The executed copy is written to
``reports/notebooks/<stage>.ipynb``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ecgstudy import config
from ecgstudy.paths import repo_root

def run(stage: str, params_file: Path | None = None, kernel: str | None = None) -> Path:
    """Execute ``notebooks/<stage>.py`` and return the executed notebook's path."""
    import jupytext
    import papermill

    root = repo_root()
    params = config.load_params(params_file)
    config.validate_all(params)
    injected = config.stage_sections(stage, params)
    source = root / "notebooks" / f"{stage}.py"
    if not source.is_file():
        raise FileNotFoundError(f"notebook for stage {stage!r} not found: {source}")
    out_dir = root / "reports" / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)  # papermill does not create folders
    work = out_dir / f".{stage}.input.ipynb"
    jupytext.write(jupytext.read(source), work)
    output = out_dir / f"{stage}.ipynb"
    os.environ.setdefault("MPLBACKEND", "agg")
    os.environ["ECGSTUDY_ROOT"] = str(root)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(work),
            str(output),
            parameters={"params": injected},
            kernel_name=kernel or "python3",
            cwd=str(root),
            progress_bar=False,
            log_output=True,
        )
    finally:
        work.unlink(missing_ok=True)
    print(f"[{stage}] executed in {time.perf_counter() - start:.1f} s -> {output.relative_to(root)}")
    return output


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
