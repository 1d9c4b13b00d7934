"""The saliency stage's files: report tables, ``dvc plots`` tables, the summary figure, example overlays."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ecgstudy.stages.saliency.result import SaliencyResult, condition_table


def write_tables(result: SaliencyResult, tables_dir: str | Path, plots_dir: str | Path) -> dict[str, Path]:
    """Write the report tables (method summary, per-condition scores, synthetic check) and, for
    ``dvc plots``, the per-pair scores (one row per record, condition and method). Without ground truth:
    the per-lead attribution shares per condition and per method, and per pair for ``dvc plots``.

    Returns {file stem: path} of every CSV written.
    """
    tables_dir, plots_dir = Path(tables_dir), Path(plots_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = _write_validity(result, tables_dir)
    if not result.ground_truth:
        frames = {tables_dir / "lead_attribution.csv": result.per_condition,
                  tables_dir / "lead_attribution_by_method.csv": result.summary,
                  plots_dir / "pair_lead_attribution.csv": result.scores}
    else:
        frames = {tables_dir / "methods_summary.csv": result.summary,
                  tables_dir / "per_condition.csv": _per_condition_wide(result.per_condition),
                  plots_dir / "pair_scores.csv": result.scores}
        if result.paired is not None and not result.paired.empty:
            frames[tables_dir / "paired_vs_baseline.csv"] = result.paired
    for path, frame in frames.items():
        frame.to_csv(path, index=False)
        written[path.stem] = path
    return written


def _per_condition_wide(per_condition: pd.DataFrame) -> pd.DataFrame:
    """One row per code: ``n_pairs``, then enrichment and pointing hit rate of integrated gradients and
    of the random map."""
    per = per_condition.pivot_table(index="code", columns="method", values=["enrichment", "pointing_hit_rate"])
    per.columns = [f"{score}_{method}" for score, method in per.columns]
    counts = per_condition.groupby("code")["n_pairs"].max()
    per.insert(0, "n_pairs", counts)
    keep = [c for c in per.columns if c == "n_pairs" or c.endswith(("integrated_gradients", "random"))]
    return per[keep].reset_index()


def _write_validity(result: SaliencyResult, tables_dir: Path) -> dict[str, Path]:
    """``synthetic_check.csv`` (without the interval columns) when the check ran."""
    if result.validity is None:
        return {}
    path = tables_dir / "synthetic_check.csv"
    result.validity.drop(columns=[c for c in result.validity if c.endswith(("_lo", "_hi"))]).to_csv(path, index=False)
    return {path.stem: path}


def draw_summary(result: SaliencyResult, figures_dir: str | Path) -> Path:
    """The stage's summary figure: localisation scores per method (``saliency_scores.png``, ground truth)
    or integrated gradients' share of attribution per lead and condition (``lead_attribution.png``)."""
    from ecgstudy.plots.saliency import plot_lead_attribution, plot_saliency_scores

    figures_dir = Path(figures_dir)
    name, stale = ("saliency_scores", "lead_attribution") if result.ground_truth else ("lead_attribution", "saliency_scores")
    (figures_dir / f"{stale}.png").unlink(missing_ok=True)  # the other case's figure of an earlier run
    if result.ground_truth:
        return plot_saliency_scores(result.summary, figures_dir / f"{name}.png")
    return plot_lead_attribution(condition_table(result), figures_dir / f"{name}.png",
                                 title="Share of |integrated gradients| per lead (rows sum to 1)")


def draw_examples(result: SaliencyResult, figures_dir: str | Path, method: str = "|integrated gradients|") -> list[Path]:
    """Draw each example as ``saliency_example_<i>.png`` (stale examples of earlier runs are removed):
    the 12 leads over the whole recording at the example's fs, the attribution as a heat band, and the
    signature mask's boxes where there is ground truth."""
    from ecgstudy.plots.ecg import plot_saliency_ecg

    figures_dir = Path(figures_dir)
    for old in figures_dir.glob("saliency_example_*.png"):
        old.unlink()
    paths = []
    for i, ex in enumerate(result.examples, start=1):
        output = ex.code if ex.label == ex.code else f"{ex.code} via output {ex.label}"
        title = f"record {ex.record_id}: {output} (p = {ex.prob:.2f}), {method}"
        paths.append(plot_saliency_ecg(ex.signal, ex.fs, ex.attribution, ex.mask,
                                       figures_dir / f"saliency_example_{i}.png", title=title))
    return paths
