"""Helpers of the guided tour (``notebooks/tour.py``): show what the study wrote, say what is missing.

The tour reads files only: ``dvc.yaml`` (which stages exist, in what order, which write figures),
``reports/figures/<stage>/*.png``, ``reports/tables/<stage>/*.csv``, ``reports/metrics/<stage>.json``,
``reports/notebooks/<stage>.ipynb`` and the curated store ``data/curated/main``, all under
:func:`ecgstudy.paths.repo_root`. Figures and tables are found by globbing, by name, in the stages a
section names, so a figure that moves to another stage, a renamed figure or a new stage needs no change
here; where nothing is found, a message names the command that produces it. Nothing here trains a model or
writes a file; :func:`run_variant` is the one function that starts a (DVC) run, and only when called.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from IPython.display import Image, Markdown, display

from ecgstudy.paths import repo_root

#: Stage order used when dvc.yaml cannot be read.
DEFAULT_STAGES: tuple[str, ...] = ("curate", "pretrain", "finetune", "transfer", "evaluate", "latent", "saliency",
                                   "report")
#: `make study` with the default params.yaml on a 2-core laptop, minutes (README: 20.5 min).
STUDY_MINUTES = 21

#: Figures displayed so far in this kernel (see :func:`show_other_figures`).
_SHOWN: set[Path] = set()


def root() -> Path:
    """The repository root the tour reads (``ECGSTUDY_ROOT``, else the folder above holding dvc.yaml)."""
    return repo_root()


def _base(base: Path | None) -> Path:
    return Path(base) if base is not None else root()


def _as_tuple(stages: str | Iterable[str] | None, base: Path) -> tuple[str, ...]:
    if stages is None:
        return tuple(all_stages(base))
    return (stages,) if isinstance(stages, str) else tuple(stages)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def pipeline(base: Path | None = None) -> dict[str, list[str]]:
    """``{stage: [outs]}`` from dvc.yaml, in pipeline order (empty when it cannot be read)."""
    try:
        stages = yaml.safe_load((_base(base) / "dvc.yaml").read_text()).get("stages", {})
    except (OSError, yaml.YAMLError, AttributeError):
        return {}
    return {name: [next(iter(o)) if isinstance(o, dict) else str(o) for o in (spec or {}).get("outs", [])]
            for name, spec in stages.items()}


def all_stages(base: Path | None = None) -> list[str]:
    """The pipeline's stages (dvc.yaml order), then any other stage with outputs on disk."""
    base = _base(base)
    names = list(pipeline(base)) or list(DEFAULT_STAGES)
    reports = base / "reports"
    found = {p.stem for p in (reports / "notebooks").glob("*.ipynb") if not p.name.startswith(".")}
    for kind in ("figures", "tables"):
        found |= {p.name for p in (reports / kind).glob("*") if p.is_dir()}
    return names + sorted(found - set(names))


@dataclass(frozen=True)
class StageFiles:
    """What one stage has written so far."""

    stage: str
    metrics: Path | None
    figures: tuple[Path, ...]
    tables: tuple[Path, ...]
    notebook: Path | None

    @property
    def ran(self) -> bool:
        """Whether the stage ran here. Not judged by the metrics JSON: it is committed (a fresh clone has the
        reference run's metrics but none of its figures, tables or executed notebooks)."""
        return bool(self.figures or self.tables or self.notebook)


def stage_files(stage: str, base: Path | None = None) -> StageFiles:
    """The outputs of ``stage`` present under ``base`` (default: :func:`root`)."""
    reports = _base(base) / "reports"
    metrics = reports / "metrics" / f"{stage}.json"
    notebook = reports / "notebooks" / f"{stage}.ipynb"
    return StageFiles(
        stage,
        metrics if metrics.is_file() else None,
        tuple(sorted((reports / "figures" / stage).glob("*.png"), key=_natural_key)),
        tuple(sorted((reports / "tables" / stage).glob("*.csv"), key=_natural_key)),
        notebook if notebook.is_file() else None,
    )


def producer(stages: Iterable[str], kind: str = "figures", base: Path | None = None) -> str:
    """The stage among ``stages`` that dvc.yaml says writes ``reports/<kind>/<stage>`` (the last such one),
    else the last of ``stages`` that is in the pipeline, else the last of ``stages``."""
    stages = list(stages)
    outs = pipeline(base)
    writers = [s for s in stages if f"reports/{kind}/{s}" in outs.get(s, [])]
    in_pipeline = [s for s in stages if s in outs]
    return (writers or in_pipeline or stages)[-1]


def rerun_hint(stage: str) -> str:
    """The commands that produce ``stage``'s outputs."""
    return (f"run `make study` (the whole study, about {STUDY_MINUTES} min on a 2-core laptop) or "
            f"`.venv/bin/dvc repro {stage}` (that stage and the stages it needs) in a terminal at the "
            "repository root, then rerun this cell")


def _missing(what: str, stages: tuple[str, ...], kind: str, base: Path) -> str:
    ran = [s for s in stages if stage_files(s, base).ran]
    if ran:
        return f"No {what} in reports/{kind}/{{{','.join(stages)}}}: {', '.join(ran)} ran but wrote none."
    where = f"reports/{kind}/{{{','.join(stages)}}}"
    return f"Not run yet: no {what} in {where}; {rerun_hint(producer(stages, kind, base))}."


def caption(figure: Path) -> str:
    """The figure's caption, as the HTML report writes it."""
    from ecgstudy.stages.report import caption_for

    return caption_for(figure.parent.name, figure.name)


def find_figures(pattern: str = "*.png", stages: str | Iterable[str] | None = None,
                 base: Path | None = None) -> list[Path]:
    """Figures ``reports/figures/<stage>/<pattern>`` of ``stages`` (default: every stage), in stage order."""
    base = _base(base)
    return [f for s in _as_tuple(stages, base) for f in stage_files(s, base).figures if f.match(pattern)]


def show_figures(pattern: str = "*.png", stages: str | Iterable[str] | None = None, base: Path | None = None,
                 width: int | None = 900) -> None:
    """Display the figures :func:`find_figures` finds, each under its path and caption; or say what is missing."""
    base = _base(base)
    figures = find_figures(pattern, stages, base)
    if not figures:
        print(_missing(f"figure matching {pattern!r}", _as_tuple(stages, base), "figures", base))
    for figure in figures:
        display(Markdown(f"**{figure.relative_to(base).as_posix()}**: {caption(figure)}"))
        display(Image(filename=str(figure), width=width))
        _SHOWN.add(figure.resolve())


def show_other_figures(base: Path | None = None) -> None:
    """Every figure not displayed yet in this kernel (a new stage's, a new figure of a known stage)."""
    base = _base(base)
    others = [f for f in find_figures(base=base) if f.resolve() not in _SHOWN]
    if not others:
        print("No other figures: every figure the study wrote has been shown above.")
    for figure in others:
        show_figures(figure.name, figure.parent.name, base)


def read_table(name: str, stages: str | Iterable[str] | None = None, base: Path | None = None) -> pd.DataFrame | None:
    """The first ``reports/tables/<stage>/<name>.csv`` among ``stages`` (a DataFrame), or None with a message."""
    base = _base(base)
    name = name if name.endswith(".csv") else f"{name}.csv"
    stages = _as_tuple(stages, base)
    for stage in stages:
        path = base / "reports" / "tables" / stage / name
        if path.is_file():
            print(path.relative_to(base).as_posix())
            return pd.read_csv(path)
    print(_missing(f"table {name}", stages, "tables", base))
    return None


def show_metrics(stages: str | Iterable[str], base: Path | None = None) -> None:
    """Display ``reports/metrics/<stage>.json`` of each of ``stages`` as the report's tables."""
    from ecgstudy.stages.report import metrics_tables

    base = _base(base)
    stages = _as_tuple(stages, base)
    shown = False
    for stage in stages:
        files = stage_files(stage, base)
        if files.metrics is None:
            continue
        shown = True
        data = json.loads(files.metrics.read_text())
        note = "" if files.ran else " (committed metrics of the reference run: this stage has not run here yet)"
        display(Markdown(f"**reports/metrics/{stage}.json**{note}"))
        for table in ([t for _, t in metrics_tables(data)] if isinstance(data, dict) else [pd.json_normalize(data)]):
            display(table)
    if not shown:
        hint = rerun_hint(producer(stages, "metrics", base))
        print(f"Not run yet: no reports/metrics/{{{','.join(stages)}}}.json; {hint}.")


def _link(path: Path, label: str) -> str:
    """A Markdown link to ``path`` relative to the kernel's folder (the notebook's folder in JupyterLab)."""
    return f"[{label}]({Path(os.path.relpath(path, Path.cwd())).as_posix()})"


def overview(base: Path | None = None) -> None:
    """Say whether the study has run, and link every stage's notebook and executed copy."""
    base = _base(base)
    stages = all_stages(base)
    files = {s: stage_files(s, base) for s in stages}
    missing = [s for s in stages if not files[s].ran]
    if len(missing) == len(stages):
        print(f"The study has not been run yet in {base}. Run `make study` in a terminal at the repository root "
              f"(about {STUDY_MINUTES} min on a 2-core laptop; the first time it also creates .venv), or one "
              "stage at a time with `.venv/bin/dvc repro <stage>`. Every section below says what it is missing.")
    elif missing:
        print(f"Stages without outputs here yet: {', '.join(missing)}. Their sections say which command runs them.")
    else:
        print(f"Every stage has outputs under {base / 'reports'}.")
    rows = ["| stage | notebook | executed copy (with outputs) | figures | tables |", "|---|---|---|---|---|"]
    for stage in stages:
        source = base / "notebooks" / f"{stage}.py"
        executed = files[stage].notebook
        rows.append(f"| {stage} | {_link(source, source.name) if source.is_file() else '-'} | "
                    f"{_link(executed, executed.name) if executed else 'not run yet'} | "
                    f"{len(files[stage].figures)} | {len(files[stage].tables)} |")
    report = base / "reports" / "report.html"
    rows.append("\n" + (f"All of it on one page: {_link(report, 'reports/report.html')}" if report.is_file()
                        else "The one-page report (reports/report.html) is written by the `report` stage."))
    display(Markdown("\n".join(rows)))


def open_store(name: str = "main", base: Path | None = None):
    """The curated store ``data/curated/<name>`` (a :class:`ecgstudy.data.store.Store`), or None with a message."""
    path = _base(base) / "data" / "curated" / name
    if not path.exists():  # say so without importing torch (the store module needs it)
        print(f"Not run yet: no curated store at {path}; {rerun_hint('curate')}.")
        return None
    from ecgstudy.data.store import Store, StoreError

    try:
        return Store(path)
    except StoreError as exc:
        problem = f" ({exc})" if path.exists() else ""
        print(f"Not run yet: no curated store at {path}{problem}; {rerun_hint('curate')}.")
        return None


def ecg(store, code: str, split: str | None = "test") -> Image | None:
    """One 12-lead ECG of ``store`` reported as ``code`` (the clearest example, as the curate stage picks it),
    from ``split`` when it has one, else from any split (the title names the split drawn from)."""
    from matplotlib.figure import Figure

    from ecgstudy.data.describe import example_per_condition
    from ecgstudy.plots.ecg import draw_ecg

    if code not in store.labels:
        print(f"{code!r} is not a label of this store; its labels: {', '.join(store.labels)}")
        return None
    picked = example_per_condition(store, [code], split=split)
    if code not in picked and split is not None:
        print(f"No record of split {split!r} is reported as {code}; drawing one from any split.")
        picked = example_per_condition(store, [code], split=None)
    if code not in picked:
        print(f"No record of this store is reported as {code}.")
        return None
    row = picked[code]
    record = store.records.iloc[row]
    info = store.meta.get("label_info", {}).get(code, {})
    fig = Figure(figsize=(11, 4.6))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.9))
    draw_ecg(ax, store.signals[row], store.fs)
    ax.set_title(f"{code}: {info.get('description', '')}  (record {record.get('record_id', row)}, "
                 f"site {record.get('site', '?')}, split {record.get('split', '?')})", fontsize=10, loc="left")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return Image(data=buffer.getvalue())


def variant_command(overrides: list[str], temp: bool = False) -> list[str]:
    """``dvc exp run [--temp] -S <override> ...`` with this environment's dvc."""
    dvc = Path(sys.executable).parent / "dvc"
    cmd = [str(dvc) if dvc.exists() else "dvc", "exp", "run", *(["--temp"] if temp else [])]
    for override in overrides:
        cmd += ["-S", override]
    return cmd


def run_variant(overrides: list[str], temp: bool = False, base: Path | None = None) -> int:
    """Run ``dvc exp run -S ...`` at the repository root, printing its log as it comes; returns its exit code.

    DVC reruns only the stages whose parameters changed and the stages after them; the workspace then holds
    the variant's outputs (``temp``: run in a temporary copy and leave the workspace as it is).
    """
    cmd = variant_command(overrides, temp)
    print("$ dvc", shlex.join(cmd[1:]), flush=True)
    proc = subprocess.Popen(cmd, cwd=_base(base), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
    return proc.wait()
