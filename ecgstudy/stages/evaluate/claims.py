"""The claims table: one row per seed-paper claim, the study's number, its interval and a verdict.

Every claim is oriented so that the paper's finding is a *positive* difference in AUROC (or, for
two-sided claims, any difference). The number is a comparison the evaluate families computed (its
Holm-adjusted interval over the family, see :mod:`ecgstudy.engine.multiplicity`), or for latent structure
and saliency localisation the paired difference their own stage computed with the same patient-level
machinery (:mod:`ecgstudy.engine.resample`): latent, the k-NN probe of the pretrained encoder minus its
random-init twin (a family of one); saliency, integrated gradients' localisation AUROC minus the
model-free signal-magnitude baseline's over the same (record, condition) pairs (Holm over the two
attribution methods compared with the baseline).

Verdict rule (:func:`verdict`), with ``min_effect`` the smallest AUROC difference of interest:

- **reproduced**: the interval lies above 0 and reaches ``min_effect`` (two-sided claims: excludes 0);
- **not reproduced**: the interval lies entirely below ``min_effect`` (this includes an interval below 0,
  the opposite direction, and a real but negligible effect); two-sided claims: the interval lies
  within (-min_effect, min_effect);
- **inconclusive at this scale**: anything else (the interval covers 0 and effects of interest);
- **not evaluated**: the comparison was not run (its arms are not in the study's design).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_EVALUATED = (
    "reproduced", "not reproduced", "inconclusive at this scale", "not evaluated")
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_EVALUATED)


@dataclass(frozen=True)
class Claim:
    """A seed paper's claim and how this study measures it."""

    key: str
    title: str
    paper: str
    finding: str  # what the paper reported
    direction: int  # +1: the paper's finding is a positive difference; 0: two-sided


CLAIMS = (
    Claim("label_efficiency", "Label efficiency", "ECG-FM (McKeen et al. 2024)",
          "a pretrained encoder fine-tuned on few labels beats training from scratch", +1),
    Claim("foundation_vs_scratch", "Foundation vs scratch on rare diseases", "UCSF (Eur Heart J Digit Health 2025)",
          "fine-tuning a foundation model beats training from scratch on small rare-disease sets", +1),
    Claim("probe_vs_finetune", "Linear probe vs fine-tune", "ECG-FM benchmark (Al-Masud et al. 2025)",
          "full fine-tuning beats a linear probe on the same pretrained encoder", +1),
    Claim("generative_vs_contrastive", "Generative vs contrastive", "Song et al. 2024",
          "the pretraining objective (generative masked reconstruction vs contrastive) changes the representation", 0),
    Claim("external_generalisation", "External generalisation", "ECGFounder (Li et al. 2025)",
          "the fine-tuned foundation model keeps its advantage over training from scratch on an external site", +1),
    Claim("latent_structure", "Latent structure", "ECG-FM (McKeen et al. 2024)",
          "pretrained embeddings organise ECGs by diagnosis better than a random encoder", +1),
    Claim("saliency_localisation", "Saliency localisation", "ECG-FM (McKeen et al. 2024)",
          "attribution maps highlight where the diagnostic signature is", +1),
)


def verdict(low: float, high: float, direction: int, min_effect: float) -> str:
    """The verdict word of an interval [low, high] oriented in the paper's direction (module docstring)."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return NOT_EVALUATED
    if direction == 0:
        if low > 0 or high < 0:
            return REPRODUCED
        return NOT_REPRODUCED if -min_effect < low and high < min_effect else INCONCLUSIVE
    if high < min_effect:
        return NOT_REPRODUCED
    return REPRODUCED if low > 0 else INCONCLUSIVE


def _pick(table: pd.DataFrame, a: str, b: str, **where: Any) -> dict[str, Any] | None:
    """The AUROC comparison a - b (or b - a, sign flipped) of ``table`` matching ``where``."""
    if table is None or table.empty:
        return None
    rows = table[table["metric"] == "auroc"]
    for column, value in where.items():
        rows = rows[rows[column] == value]
    for first, second, sign in ((a, b, 1.0), (b, a, -1.0)):
        hit = rows[(rows["a"] == first) & (rows["b"] == second)]
        if len(hit):
            r = hit.iloc[0].to_dict()
            low, high = (r["low"], r["high"]) if sign > 0 else (-r["high"], -r["low"])
            return {"estimate": sign * r["diff"], "low": low, "high": high, "level": r["level"],
                    "p_holm": r["p_holm"], "n_labels": r["n_labels"], "repeats": r["repeats"],
                    "family_size": r["family_size"]}
    return None


def _finetune(comparisons: pd.DataFrame, a: str, b: str, fraction: str, split: str) -> tuple[dict | None, str]:
    if comparisons is None or comparisons.empty:
        return None, f"finetune: {a} - {b}"
    fractions = sorted(comparisons["fraction"].unique())
    f = fractions[0] if fraction == "smallest" else fractions[-1]
    return (_pick(comparisons, a, b, fraction=f, split=split),
            f"finetune: {a} - {b}, {f:.0%} of training labels, {split} split, macro AUROC")


def claim_rows(finetune: pd.DataFrame, pretrain: pd.DataFrame, transfer: pd.DataFrame, probe: pd.DataFrame,
               latent: dict | None, saliency: dict | None, min_effect: float) -> pd.DataFrame:
    """One row per :data:`CLAIMS` entry: estimate, interval, level, label-set size, repeats, verdict, source."""
    found: dict[str, tuple[dict | None, str, str]] = {}
    found["label_efficiency"] = (*_finetune(finetune, "pretrained", "scratch", "smallest", "test"), "")
    found["probe_vs_finetune"] = (*_finetune(finetune, "pretrained", "linear_probe", "largest", "test"), "")
    found["external_generalisation"] = (*_finetune(finetune, "pretrained", "scratch", "largest", "external"), "")

    hit, source = None, "transfer: foundation - scratch"
    if transfer is not None and not transfer.empty:
        pooled = transfer[transfer["condition"] == "mean over conditions"]
        rows = pooled if len(pooled) else transfer
        n_min = int(rows["n_cases"].min())
        cond = rows["condition"].iloc[0]
        hit = _pick(rows, "foundation", "scratch", n_cases=n_min, condition=cond)
        source = f"transfer: foundation - scratch, {n_min} training cases, {cond}, test AUROC"
    found["foundation_vs_scratch"] = (hit, source, "")

    hit, source, note = None, "pretrain: probe AUROC, mae - cmsc run", ""
    if probe is not None and not probe.empty:
        by_objective = {o: r for o, r in zip(probe["objective"], probe["run"])}
        gen, con = by_objective.get("mae"), by_objective.get("cmsc")
        if gen and con:
            hit = _pick(pretrain, gen, con, kind="between_runs")
            encoders = dict(zip(probe["run"], probe["encoder"]))
            source = f"pretrain: linear-probe validation AUROC, {gen} (masked) - {con} (contrastive)"
            note = ("same encoder" if encoders.get(gen) == encoders.get(con)
                    else f"encoders differ ({encoders.get(gen)} vs {encoders.get(con)}): objective confounded")
    found["generative_vs_contrastive"] = (hit, source, note)

    found["latent_structure"] = _latent(latent)
    found["saliency_localisation"] = _saliency(saliency)

    rows = []
    for claim in CLAIMS:
        hit, source, note = found[claim.key]
        hit = hit or {}
        low, high = hit.get("low"), hit.get("high")
        rows.append({
            "claim": claim.key, "title": claim.title, "paper": claim.paper, "finding": claim.finding,
            "direction": "two-sided" if claim.direction == 0 else "positive", "measure": source,
            "estimate": hit.get("estimate"), "low": low, "high": high, "level": hit.get("level"),
            "n_labels": hit.get("n_labels"), "repeats": hit.get("repeats"), "family_size": hit.get("family_size"),
            "verdict": verdict(_num(low), _num(high), claim.direction, min_effect), "note": note,
        })
    return pd.DataFrame(rows)


def _latent(latent: dict | None) -> tuple[dict | None, str, str]:
    """The latent claim from ``latent.json``: k-NN AUROC gain of the pretrained encoder over its twin."""
    source = "latent: k-NN probe test AUROC, pretrained - random-init twin"
    stats = (latent or {}).get("statistics")
    if not stats or latent.get("knn_auroc_gain_over_random") is None:
        return None, source, ""  # absent, or written before patient-level statistics: not evaluated
    hit = {"estimate": latent["knn_auroc_gain_over_random"], "low": latent.get("knn_auroc_gain_low"),
           "high": latent.get("knn_auroc_gain_high"), "level": latent.get("knn_auroc_gain_level"),
           "n_labels": latent.get("n_labels"), "repeats": stats.get("repeats"), "family_size": 1}
    note = (f"latent stage: {stats.get('n_boot')} resamples of {stats.get('n_patients')} patients, "
            f"paired by patient draw; one comparison")
    return hit, source, note


def _saliency(saliency: dict | None) -> tuple[dict | None, str, str]:
    """The saliency claim from ``saliency.json``: integrated gradients - the signal-magnitude baseline."""
    source = "saliency: integrated-gradients localisation AUROC - signal-magnitude |x| map (same pairs, same smoothing)"
    row = (((saliency or {}).get("paired") or {}).get("integrated_gradients") or {}).get("auroc")
    if not row:
        return None, source, ""  # absent, no ground truth, or written before the paired comparison
    hit = {"estimate": row.get("diff"), "low": row.get("low"), "high": row.get("high"), "level": row.get("level"),
           "n_labels": saliency.get("n_conditions"), "repeats": (saliency.get("statistics") or {}).get("repeats"),
           "family_size": row.get("family_size")}
    stats = saliency.get("statistics") or {}
    note = (f"saliency stage: {row.get('n_pairs')} (record, condition) pairs of {saliency.get('n_patients')} patients, "
            f"{stats.get('n_boot')} patient resamples; Holm over integrated gradients and gradient x input vs the "
            f"baseline; labels = conditions")
    return hit, source, note


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


# ----------------------------------------------------------------------------- what a reader sees


def _fmt(value: Any, digits: int = 3) -> str:
    number = _num(value)
    return "-" if not math.isfinite(number) else f"{number:+.{digits}f}"


def markdown(metrics: dict[str, Any]) -> str:
    """The results table (markdown) from the ``claims`` and ``rule`` of ``reports/metrics/evaluate.json``.

    Everything shown comes from the metrics dict, so the README block can be checked against the file.
    """
    claims = metrics.get("claims") or []
    rule = metrics.get("rule") or {}
    counts = {v: sum(c.get("verdict") == v for c in claims) for v in VERDICTS}
    lines = [
        "| Claim (seed paper) | What this study measures | Difference [interval] | Labels | Repeats | Verdict |",
        "|---|---|---|---|---|---|",
    ]
    for c in claims:
        interval = f"{_fmt(c.get('estimate'))} [{_fmt(c.get('low'))}, {_fmt(c.get('high'))}]"
        level = _num(c.get("level"))
        if math.isfinite(level):
            interval += f" ({level:.1%})"
        labels = "-" if c.get("n_labels") is None else str(int(c["n_labels"]))
        repeats = "-" if c.get("repeats") is None else str(int(c["repeats"]))
        measure = c.get("measure", "") + (f" ({c['note']})" if c.get("note") else "")
        lines.append(f"| {c.get('title')}: {c.get('finding')} ({c.get('paper')}) | {measure} | {interval} | "
                     f"{labels} | {repeats} | **{c.get('verdict')}** |")
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])
    lines += [
        "",
        f"Verdicts: {summary or 'none'}. Differences are AUROC, oriented so that the paper's finding is positive; "
        f"intervals are Holm-adjusted over their family for family-wise confidence {rule.get('family_level', '-')} "
        f"(their level in parentheses), from {rule.get('n_boot', '-')} resamples of patients and training repeats. "
        f"Rule: reproduced when the interval lies above 0 and reaches the smallest effect of interest "
        f"({rule.get('min_effect', '-')} AUROC); not reproduced when it lies entirely below it; "
        f"inconclusive at this scale otherwise (two-sided claims: reproduced when it excludes 0, not reproduced "
        f"when it lies within +/- the smallest effect). Labels: size of the fixed label set behind the number.",
    ]
    return "\n".join(lines) + "\n"
