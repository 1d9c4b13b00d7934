"""Report stage: one self-contained HTML page assembling every stage's metrics, tables and figures.

Reads, under the repository root (see :mod:`ecgstudy.stages.outputs`):

- ``reports/metrics/<stage>.json``  -> metric tables (nested dicts of equal keys become one matrix table)
- ``reports/tables/<stage>/*.csv``  -> HTML tables (long tables cut to ``max_table_rows``)
- ``reports/figures/<stage>/*.png`` -> figures embedded as base64 PNG, each with a caption

in stage order (``report.stages``: curate, pretrain, finetune, transfer, evaluate, latent, saliency; a
listed stage without outputs on disk gets a "No outputs found" note, stages found on disk but not listed
follow), with the package version and the params.yaml used. Above every stage, the **results**: the
claims table of ``reports/metrics/evaluate.json`` (one row per seed-paper claim, its number, interval,
label-set size and verdict; :func:`results_section`), every verdict drawn alike so that a null or a
negative result is as visible as a positive one. Writes ``reports/report.html``; nothing is fetched when
the page is opened. Entry point: :func:`run`. The page holds no run date, git commit or timing: it is a
DVC output, the same bytes on a faithful rerun (``dvc repro -f`` leaves ``dvc.lock`` unchanged);
dvc.lock records what it was built from.
"""

from __future__ import annotations

import base64
import fnmatch
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy import __version__
from ecgstudy.paths import repo_root, resolve

#: One-line summary of each stage shown under its heading.
STAGE_INTROS: dict[str, str] = {
    "curate": "Simulate (or read) the cohort, harmonise every record to the store's sampling rate and "
              "length, run quality checks and split by patient.",
    "pretrain": "Pretraining objectives compared on the foundation corpus's training records at matched compute "
                "(supervised, contrastive CMSC+RLM, masked reconstruction, wav2vec 2.0 masked prediction, ECG-FM's "
                "hybrid), each encoder scored by a "
                "linear probe on the validation split against the same architecture at random initialisation; "
                "the kept run's encoder feeds every later stage.",
    "finetune": "Multi-label diagnosis: pretrained vs from scratch vs linear probes at several label "
                "fractions; point macro AUROC / AUPRC here, intervals and comparisons under evaluate.",
    "transfer": "Rare conditions with small training sets: foundation encoder vs training from scratch (mean "
                "test AUROC over repeats here; intervals under evaluate).",
    "evaluate": "Statistics from the scores that pretrain, finetune and transfer saved (no model is retrained): "
                "intervals that resample patients and training repeats together, on a fixed label set per family "
                "(its size in n_labels), paired comparisons with Holm's adjustment per family, the claims shown "
                "at the top of this page, and the figures drawn from them.",
    "latent": "Embedding space of the pretrained encoder vs a random-init encoder of the same architecture: "
              "UMAP by diagnosis and by site, a k-NN probe of the diagnoses, and how well k-NN reads the site, "
              "age (mean absolute error, years) and sex (AUROC) from the embeddings.",
    "saliency": "Attribution maps of a fine-tuned classifier, scored against the simulator's ground-truth "
                "signature masks (simulated data) or, without ground truth (real data), described by the share "
                "of attribution each lead carries per condition.",
}
#: Figure captions keyed by file-name pattern (fnmatch on the file name, first match wins).
CAPTIONS: tuple[tuple[str, str], ...] = (
    ("ecg_per_condition*.png", "One 12-lead ECG per condition (25 mm/s, 10 mm/mV; lead II rhythm strip)."),
    ("*interval*.png", "ECG intervals measured by neurokit2 on the curated signals, by condition."),
    ("*loss*.png", "Pretraining loss per epoch of every run on the training and validation splits (one panel "
                   "per run: the objectives' losses are on different scales)."),
    ("probe_comparison.png", "Validation macro AUROC of a linear probe on each frozen pretrained encoder (coloured) "
                             "and on the same architecture at random initialisation (grey), mean over training "
                             "repeats; error bar: Holm-adjusted interval of the gain (patients and repeats resampled)."),
    ("*label_efficiency*.png", "Macro AUROC against the fraction of training patients whose labels were "
                               "used, one line per strategy (mean over repeats) with its 95% band (patients and "
                               "training repeats resampled), per evaluation split, on the fixed label set."),
    ("transfer*.png", "Rare-condition AUROC against the number of training cases, foundation encoder vs "
                      "training from scratch (mean over repeats), with 95% intervals (patients and repeats resampled)."),
    ("reliability.png", "Reliability diagram of the kept classifier (the fine-tuned foundation encoder at the "
                        "largest label fraction, repeat 0: the saved checkpoint) on the test split, for the labels "
                        "with the most positives: observed positive fraction against mean predicted probability "
                        "in equal-width bins (dashed: perfect calibration), expected calibration error (ECE) in the "
                        "legend; below, records per bin. Every model and label: reports/tables/finetune/"
                        "calibration.csv and decisions.csv."),
    ("umap.png", "UMAP of test-split embeddings (plus the external site): pretrained encoder (left) vs a "
                 "random-init encoder of the same architecture (right), coloured by diagnostic superclass "
                 "(top) and by recording site (bottom). Legend counts refer to the drawn records."),
    ("knn_probe_auroc.png", "Per-label AUROC of a k-nearest-neighbour probe fitted on training-split "
                            "embeddings and scored on the test split (dashed line: chance)."),
    ("saliency_scores.png", "Localisation of attribution against the ground-truth signature masks: mean "
                            "over (record, condition) pairs with 95% bootstrap intervals; grey bars are "
                            "the signal-magnitude and random reference maps, dashed lines chance."),
    ("saliency_example_*.png", "Integrated-gradients attribution (heat) for the named condition on a "
                               "held-out ECG; on simulated data, blue boxes outline where the simulator "
                               "placed the condition's signature (real data has no such ground truth)."),
    ("lead_attribution.png", "Share of integrated-gradients attribution carried by each lead, per condition "
                             "(rows sum to 1; the colour-bar line marks the uniform 1/12). No ground truth: "
                             "a description of which leads the model uses, not a score."),
    ("synthetic_check*.png", "Scoring check on a synthetic task whose label depends only on a bump in V2 "
                             "between 3 and 4 s."),
)
_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #c62828;padding-bottom:.15em;margin-top:2em}
h3{font-size:1.05em;margin:1.2em 0 .4em}.meta{color:#555;font-size:.9em}
table.data{border-collapse:collapse;font-size:.82em;margin:.4em 0 1em}
table.data th,table.data td{border:1px solid #ddd;padding:.25em .55em;text-align:right}
table.data th{background:#f6f6f6}table.data td:first-child,table.data th:first-child{text-align:left}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.88em;color:#444;margin-top:.3em}pre{background:#f7f7f7;padding:1em;overflow-x:auto;
font-size:.8em}.note{color:#777;font-style:italic;font-size:.88em}nav a{margin-right:1em}
table.claims td{text-align:left;vertical-align:top}table.claims td.num{text-align:right;white-space:nowrap}
.verdict{display:inline-block;font-weight:700;font-size:1em;padding:.1em .5em;border:2px solid;border-radius:4px;
white-space:nowrap}.v-reproduced{color:#1b5e20;border-color:#1b5e20}.v-not-reproduced{color:#b71c1c;
border-color:#b71c1c}.v-inconclusive-at-this-scale{color:#6d4c00;border-color:#6d4c00}.v-not-evaluated{color:#555;
border-color:#555}.summary{font-size:1.05em}
"""


@dataclass(frozen=True)
class ReportConfig:
    """params.yaml section ``report``."""

    title: str = "ecgstudy: ECG foundation models on a simulated 12-lead cohort"  # page heading
    output: str = "reports/report.html"  # written page (relative to the repository root)
    stages: tuple[str, ...] = ("curate", "pretrain", "finetune", "transfer", "evaluate", "latent", "saliency")  # order
    max_table_rows: int = 40  # longer tables are cut in the page (the CSV keeps every row)
    float_digits: int = 3  # decimals shown in tables
    params_file: str = "params.yaml"  # parameters dumped at the end of the page

    def validate(self) -> None:
        if self.max_table_rows < 1 or self.float_digits < 0:
            raise ValueError("max_table_rows must be >= 1 and float_digits >= 0")


def caption_for(stage: str, name: str) -> str:
    """Caption of figure file ``name`` of ``stage``: from :data:`CAPTIONS`, else a generic one."""
    for pattern, text in CAPTIONS:
        if fnmatch.fnmatch(name, pattern):
            return text
    return f"{stage}: {Path(name).stem.replace('_', ' ')}."


def _natural_key(path: Path) -> list:
    """Sort ``example_2`` before ``example_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts/lists -> ``{"a.b": scalar}`` (lists of scalars joined into one string)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        if all(_is_scalar(v) for v in value):
            return {prefix: ", ".join(str(v) for v in value)}
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


_BOUNDS = {"_low": 1, "_lo": 1, "_high": 2, "_hi": 2}


def _column_order(columns: list[str]) -> list[str]:
    """Keep first-appearance order of each quantity, its ``_low``/``_lo`` bound next, then ``_high``/``_hi``
    (metrics JSON keys are sorted, which would put ``x_high`` before ``x_low``)."""
    def split(column: str) -> tuple[str, int]:
        for suffix, rank in _BOUNDS.items():
            if column.endswith(suffix):
                return column[: -len(suffix)], rank
        return column, 0

    bases: list[str] = []
    for c in columns:
        base = split(c)[0]
        if base not in bases:
            bases.append(base)
    return sorted(columns, key=lambda c: (bases.index(split(c)[0]), split(c)[1]))


def metrics_tables(metrics: dict[str, Any]) -> list[tuple[str, pd.DataFrame]]:
    """Tables of one metrics JSON: a matrix for each group of sub-dicts sharing the same scalar keys
    (e.g. one row per encoder or method), and a key/value table of everything else."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for key, value in metrics.items():
        if isinstance(value, dict) and value and all(_is_scalar(v) for v in value.values()):
            groups.setdefault(tuple(value), []).append(key)
    tables, used = [], set()
    for columns, keys in groups.items():
        if len(keys) >= 2:
            matrix = pd.DataFrame([metrics[k] for k in keys], index=keys, columns=_column_order(list(columns)))
            tables.append(("", matrix.rename_axis("").reset_index()))
            used.update(keys)
    rest = _flatten({k: v for k, v in metrics.items() if k not in used})
    if rest:
        tables.insert(0, ("", pd.DataFrame({"metric": list(rest), "value": list(rest.values())})))
    return tables


def table_html(table: pd.DataFrame, max_rows: int, digits: int) -> str:
    """An HTML table (values escaped), cut to ``max_rows`` rows with a note."""
    shown = table.head(max_rows).copy()
    for column in shown.columns[shown.dtypes == object]:  # JSON nulls show as "-" like NaN
        shown[column] = [np.nan if v is None else v for v in shown[column]]
    body = shown.to_html(index=False, border=0, classes="data", na_rep="-", escape=True,
                         float_format=lambda v: f"{v:.{digits}f}")
    if len(table) > max_rows:
        body += f'<p class="note">First {max_rows} of {len(table)} rows.</p>'
    return body


def figure_html(path: Path, caption: str) -> str:
    """A <figure> with the PNG embedded as base64 and an escaped caption."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{html.escape(path.name)}</b>: {html.escape(caption)}</figcaption></figure>")


#: Key of the claims list in the evaluate stage's metrics (shown by :func:`results_section`, not in its tables).
CLAIMS_KEY = "claims"


def _number(value: Any, signed: bool = True) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if not np.isfinite(number) else (f"{number:+.3f}" if signed else f"{number:g}")


def results_section(root: Path) -> str:
    """HTML of the results: one row per seed-paper claim of ``reports/metrics/evaluate.json`` with its verdict.

    Every verdict gets the same badge (size, weight, border; only the colour differs), and the summary line
    counts each verdict, so "not reproduced" and "inconclusive" read as loudly as "reproduced".
    """
    parts = ['<h2 id="results">Results: the seed papers\' claims at this scale</h2>']
    path = root / "reports" / "metrics" / "evaluate.json"
    try:
        metrics = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    claims = metrics.get(CLAIMS_KEY) if isinstance(metrics, dict) else None
    if not claims:
        parts.append('<p class="note">No results yet: the evaluate stage has not written its claims '
                     "(reports/metrics/evaluate.json).</p>")
        return "\n".join(parts)
    counts: dict[str, int] = {}
    for claim in claims:
        counts[claim.get("verdict", "")] = counts.get(claim.get("verdict", ""), 0) + 1
    summary = ", ".join(f"{n} {html.escape(v)}" for v, n in counts.items())
    parts.append(f'<p class="summary">{len(claims)} claims: {summary}.</p>')
    rows = []
    for c in claims:
        verdict = str(c.get("verdict", ""))
        css = "v-" + re.sub(r"[^a-z]+", "-", verdict.lower()).strip("-")
        level = _number(c.get("level"), signed=False)
        interval = f"{_number(c.get('estimate'))} [{_number(c.get('low'))}, {_number(c.get('high'))}]"
        if level != "-":
            interval += f" ({float(level):.1%})"
        note = f'<br><span class="note">{html.escape(str(c["note"]))}</span>' if c.get("note") else ""
        rows.append(
            f"<tr><td><b>{html.escape(str(c.get('title', '')))}</b>: {html.escape(str(c.get('finding', '')))}"
            f"<br><span class=\"meta\">{html.escape(str(c.get('paper', '')))}</span></td>"
            f"<td>{html.escape(str(c.get('measure', '')))}{note}</td><td class=\"num\">{html.escape(interval)}</td>"
            f"<td class=\"num\">{_number(c.get('n_labels'), signed=False)}</td>"
            f"<td class=\"num\">{_number(c.get('repeats'), signed=False)}</td>"
            f'<td><span class="verdict {css}">{html.escape(verdict)}</span></td></tr>')
    parts.append('<table class="data claims"><thead><tr><th>Claim (seed paper)</th><th>What this study measures</th>'
                 "<th>Difference [interval] (level)</th><th>Labels</th><th>Repeats</th><th>Verdict</th></tr></thead>"
                 f"<tbody>{''.join(rows)}</tbody></table>")
    rule = metrics.get("rule") or {}
    parts.append(
        '<p class="note">Differences in AUROC, oriented so that the paper\'s finding is positive; intervals from '
        f"{html.escape(str(rule.get('n_boot', '-')))} resamples of patients and training repeats, Holm-adjusted over "
        "their family of comparisons (the level each was drawn at in parentheses). Reproduced: the interval lies "
        f"above 0 and reaches the smallest effect of interest ({html.escape(str(rule.get('min_effect', '-')))} AUROC); "
        "not reproduced: it lies entirely below that effect; inconclusive at this scale: otherwise. Labels: size of "
        "the fixed label set behind the number.</p>")
    return "\n".join(parts)


def stage_section(root: Path, stage: str, cfg: ReportConfig) -> str:
    """HTML of one stage: intro, metrics, figures, tables (whatever exists on disk)."""
    reports = root / "reports"
    parts = [f'<h2 id="{html.escape(stage)}">{html.escape(stage)}</h2>']
    if stage in STAGE_INTROS:
        parts.append(f"<p>{html.escape(STAGE_INTROS[stage])}</p>")
    notebook = reports / "notebooks" / f"{stage}.ipynb"
    if notebook.is_file():
        parts.append(f'<p class="meta">Executed notebook: <a href="notebooks/{stage}.ipynb">'
                     f"reports/notebooks/{stage}.ipynb</a></p>")
    found = False
    metrics_file = reports / "metrics" / f"{stage}.json"
    if metrics_file.is_file():
        found = True
        try:
            metrics = json.loads(metrics_file.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{metrics_file}: not valid JSON ({exc})") from exc
        parts.append("<h3>Metrics</h3>")
        if isinstance(metrics, dict):
            metrics = {k: v for k, v in metrics.items() if k != CLAIMS_KEY}  # shown at the top of the page
            parts += [table_html(t, cfg.max_table_rows, cfg.float_digits) for _, t in metrics_tables(metrics)]
        else:
            parts.append(f"<pre>{html.escape(json.dumps(metrics, indent=2))}</pre>")
    for png in sorted((reports / "figures" / stage).glob("*.png"), key=_natural_key):
        found = True
        parts.append(figure_html(png, caption_for(stage, png.name)))
    for csv in sorted((reports / "tables" / stage).glob("*.csv"), key=_natural_key):
        found = True
        try:
            table = pd.read_csv(csv)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ValueError(f"{csv}: not a readable CSV table ({exc})") from exc
        parts.append(f"<h3>{html.escape(csv.stem.replace('_', ' '))}</h3>")
        parts.append(table_html(table, cfg.max_table_rows, cfg.float_digits))
    if not found:
        parts.append('<p class="note">No outputs found for this stage.</p>')
    return "\n".join(parts)


def _stages_on_disk(root: Path) -> list[str]:
    reports = root / "reports"
    names = {p.stem for p in (reports / "metrics").glob("*.json")}
    for kind in ("figures", "tables"):
        names |= {p.name for p in (reports / kind).glob("*") if p.is_dir()}
    return sorted(names)


def build_report(cfg: ReportConfig, root: Path | None = None) -> Path:
    """Assemble the HTML report and write it to ``cfg.output``; returns its path.

    Parameters
    ----------
    cfg : report section of params.yaml.
    root : repository root (default :func:`ecgstudy.paths.repo_root`).
    """
    root = root or repo_root()
    stages = list(cfg.stages) + [s for s in _stages_on_disk(root) if s not in cfg.stages and s != "report"]
    params_path = resolve(cfg.params_file, root)
    params_text = params_path.read_text() if params_path.is_file() else f"({cfg.params_file} not found)"
    nav = " ".join(f'<a href="#{html.escape(s)}">{html.escape(s)}</a>' for s in stages)
    body = [
        f"<h1>{html.escape(cfg.title)}</h1>",
        f'<p class="meta">ecgstudy {html.escape(__version__)} &middot; built by <code>dvc repro</code> from the '
        'parameters at the end of this page; <code>dvc.lock</code> records every input</p>',
        f"<nav><a href=\"#results\">results</a> {nav} <a href=\"#params\">params</a></nav>",
        results_section(root),
        *(stage_section(root, s, cfg) for s in stages),
        f'<h2 id="params">Parameters ({html.escape(cfg.params_file)})</h2>',
        f"<pre>{html.escape(params_text)}</pre>",
    ]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(cfg.title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    out = resolve(cfg.output, root)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def run(cfg: SimpleNamespace, root: Path | None = None) -> Path:
    """The report stage: assemble every stage's outputs into ``report.output``; returns the page's path.

    Parameters
    ----------
    cfg : ``ecgstudy.config.stage_config("report", params)`` (attribute ``report``).
    root : repository root the stages' outputs are read from (default :func:`ecgstudy.paths.repo_root`).
    """
    return build_report(cfg.report, root)
