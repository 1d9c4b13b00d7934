"""Model cards: what a checkpoint is, what it was trained on, how well it does, and what it is not for.

Every checkpoint the study writes gets ``<name>.card.json`` (the card as data) and ``<name>.card.md`` (the
same card as text) beside it; ``ecgstudy describe <checkpoint>`` prints the text, or, for a checkpoint
without a card, the part of it the checkpoint alone can tell. Sections (after Mitchell et al., "Model Cards
for Model Reporting", FAT* 2019): model (architecture and size), pretraining (objective and corpus),
preprocessing, labels, training data and splits, evaluation (test metrics with 95% intervals, thresholds,
calibration), intended use and known limits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ecgstudy.models.checkpoint import n_parameters, read_checkpoint

#: What every model of this study is for and not for (the card adds the limits of its own data).
INTENDED_USE = ("Research on ECG representation learning: reproducing this study, comparing encoders, probing "
                "embeddings, and screening-style experiments on one's own recordings. Not a medical device: "
                "its outputs must not inform the care of a patient.")
LIMITS = (
    "Inputs must go through this checkpoint's preprocessing (ecgstudy predict / embed apply it from the "
    "checkpoint); other filtering, rates or normalisation change the outputs without warning.",
    "Labels outside the vocabulary below are never predicted; absent leads are masked, and accuracy with "
    "fewer leads than in training is not measured here.",
    "Thresholds were chosen on the validation split of the training data; at another site, device or "
    "prevalence, choose and check them again on local labelled records.",
)
SIMULATED_LIMIT = ("Trained and tested on the study's simulated cohort: its numbers describe the simulator, "
                   "not real patients.")


def card_paths(checkpoint: str | Path) -> tuple[Path, Path]:
    """(``<name>.card.json``, ``<name>.card.md``) beside ``checkpoint`` (``<name>.pt``)."""
    checkpoint = Path(checkpoint)
    stem = checkpoint.name.removesuffix(".pt")
    return checkpoint.with_name(f"{stem}.card.json"), checkpoint.with_name(f"{stem}.card.md")


def build_card(
    checkpoint: str | Path,
    *,
    training: dict[str, Any] | None = None,
    pretraining: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    label_info: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The card of ``checkpoint`` as plain data.

    ``training``: data and splits (store source, records, patients, fraction, epochs); ``pretraining``:
    objective and corpus of the encoder it starts from; ``evaluation``: {split: {"macro_auroc": float,
    "per_label": [operating-point rows]}}; ``label_info``: code -> description (store ``meta.label_info``).
    """
    payload = read_checkpoint(checkpoint)
    spec = payload["spec"]["encoder"] if payload["kind"] == "classifier" else payload["spec"]
    extra, config = payload.get("extra", {}), payload.get("config", {})
    source = (training or {}).get("source") or (pretraining or {}).get("source")
    limits = list(LIMITS) + ([SIMULATED_LIMIT] if source == "simulated" else [])
    info = label_info or {}
    return {
        "name": Path(checkpoint).name.removesuffix(".pt"),
        "kind": payload["kind"],
        "model": {"arch": spec.get("arch"), "preset": spec.get("preset"), "n_leads": spec.get("n_leads"),
                  "n_parameters": n_parameters(checkpoint), "n_outputs": len(payload["labels"]) or None},
        "pretraining": pretraining or ({"objective": config.get("objective"), "n_records": extra.get("n_train"),
                                        "splits": config.get("splits")} if payload["kind"] == "encoder" else {}),
        "preprocessing": payload["preprocessing"],
        "labels": [{"code": c, "description": (info.get(c) or {}).get("description", "")} for c in payload["labels"]],
        "training": training or {},
        "thresholds": extra.get("thresholds") or {},
        "evaluation": evaluation or {},
        "intended_use": INTENDED_USE,
        "limits": limits,
    }


def write_card(checkpoint: str | Path, card: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``card`` as ``<name>.card.json`` and ``<name>.card.md`` beside ``checkpoint``."""
    json_path, md_path = card_paths(checkpoint)
    json_path.write_text(json.dumps(card, indent=2, allow_nan=True) + "\n")
    md_path.write_text(render(card))
    return json_path, md_path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3f}"
    return "n/a" if value is None else str(value)


def _interval(row: dict[str, Any], key: str) -> str:
    return f"{_fmt(row.get(key))} [{_fmt(row.get(key + '_low'))}, {_fmt(row.get(key + '_high'))}]"


def render(card: dict[str, Any]) -> str:
    """The card as Markdown text."""
    m, pre = card["model"], card["preprocessing"]
    lines = [f"# Model card: {card['name']} ({card['kind']})", "", "## Model",
             f"- architecture: {m['arch']}-{m['preset']}, {m['n_leads']} input leads, {m['n_parameters']:,} parameters"
             + (f", {m['n_outputs']} outputs" if m.get("n_outputs") else "")]
    if card["pretraining"]:
        lines += ["", "## Pretraining"] + [f"- {k}: {_fmt(v)}" for k, v in card["pretraining"].items()]
    lines += ["", "## Preprocessing (applied by `ecgstudy predict` / `embed` from the checkpoint)"]
    lines += [f"- {k}: {_fmt(pre.get(k))}" for k in ("fs", "duration_s", "n_samples", "length_policy", "notch",
                                                     "bandpass", "baseline_median_s", "normalise", "units") if k in pre]
    if card["labels"]:
        lines += ["", "## Labels (output order)", ", ".join(
            f"{lab['code']}" + (f" ({lab['description']})" if lab["description"] else "") for lab in card["labels"])]
    if card["training"]:
        lines += ["", "## Training data and splits"] + [f"- {k}: {_fmt(v)}" for k, v in card["training"].items()]
    if card["thresholds"]:
        t = card["thresholds"]
        lines += ["", "## Decision thresholds", f"- rule: {t.get('rule')}, chosen on the {t.get('chosen_on')} split",
                  "- " + ", ".join(f"{k} {_fmt(v)}" for k, v in (t.get("values") or {}).items())]
    for split, ev in (card["evaluation"] or {}).items():
        lines += ["", f"## Evaluation: {split} split",
                  f"- macro AUROC {_fmt(ev.get('macro_auroc'))} over {ev.get('n_labels', 'n/a')} evaluable labels, "
                  f"{ev.get('n', 'n/a')} records ({ev.get('protocol', '')})",
                  "- 95% intervals: Wilson (sensitivity, specificity), Hanley-McNeil (AUROC); ECE: 10 equal-width bins",
                  "", "| label | positives | AUROC | sensitivity | specificity | ECE |", "|---|---|---|---|---|---|"]
        for row in ev.get("per_label", []):
            lines.append(f"| {row['label']} | {row['n_pos']}/{row['n']} | {_interval(row, 'auroc')} | "
                         f"{_interval(row, 'sensitivity')} | {_interval(row, 'specificity')} | {_fmt(row.get('ece'))} |")
    lines += ["", "## Intended use", card["intended_use"], "", "## Known limits"] + [f"- {x}" for x in card["limits"]]
    return "\n".join(lines) + "\n"


def evaluation_entry(operating: pd.DataFrame, macro_auroc: float, n: int, protocol: str) -> dict[str, Any]:
    """The card's evaluation of one split from :func:`ecgstudy.engine.thresholds.operating_points` rows."""
    rows = operating.drop(columns=[c for c in ("split",) if c in operating.columns]).to_dict("records")
    return {"macro_auroc": macro_auroc, "n": int(n), "n_labels": int(operating["auroc"].notna().sum()),
            "protocol": protocol, "per_label": rows}


def describe(checkpoint: str | Path) -> str:
    """The model card of ``checkpoint`` as text: its card file, else what the checkpoint alone tells."""
    json_path, _ = card_paths(checkpoint)
    if json_path.is_file():
        return render(json.loads(json_path.read_text()))
    card = build_card(checkpoint)
    card["limits"] = card["limits"] + ["No card was written with this checkpoint: training data and test metrics "
                                       "are unknown here."]
    return render(card)
