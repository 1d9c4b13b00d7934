"""Saliency stage: where in the ECG does a fine-tuned classifier look, and is it where the disease is?

For each held-out record with a ground-truth signature mask (the simulator's leads x time spans of each
condition it truly has), the logit of that condition is explained with integrated gradients and gradient
x input, and the maps are scored against the mask next to a random and a signal-magnitude reference (see
:mod:`ecgstudy.engine.attribution` for the methods and scores).

A real dataset has no masks, so nothing can be scored (and nothing is: the metrics say
``ground_truth: false`` and carry no localisation score). The classifier is still explained, on a seeded
sample of the split's records reported positive for each condition, and the maps are described: the share
of attribution each lead carries, per condition (which leads the model uses for what), next to the share
of the signal magnitude (a reference that only knows where the ECG is large).

:func:`synthetic_check` shows the scoring means something: on a task whose label depends only on a bump
in lead V2 between 3 and 4 s, a small CNN trained for a few steps must put its attribution there.

Modules:

- :mod:`~ecgstudy.stages.saliency.config`: :class:`SaliencyConfig` (params.yaml ``saliency``), :class:`ClassifierChoice`
- :mod:`~ecgstudy.stages.saliency.check`: the synthetic known-region check
- :mod:`~ecgstudy.stages.saliency.scored`: pairs with signature masks, explained and scored
- :mod:`~ecgstudy.stages.saliency.described`: pairs without masks, explained and described per lead
- :mod:`~ecgstudy.stages.saliency.result`: :class:`SaliencyResult`, :class:`Example` and shared steps
- :mod:`~ecgstudy.stages.saliency.write`: tables, plot CSVs and figures

:func:`run` is the stage (it writes every output); :func:`explain` computes its result without
writing anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgstudy.models.checkpoint import load_classifier
from ecgstudy.stages import artifacts
from ecgstudy.stages.common import open_store_and_model
from ecgstudy.stages.outputs import stage_outputs
from ecgstudy.stages.saliency.check import ToyClassifier, synthetic_bump_task, synthetic_check
from ecgstudy.stages.saliency.config import ClassifierChoice, SaliencyConfig
from ecgstudy.stages.saliency.described import explain_without_masks, select_positive_pairs
from ecgstudy.stages.saliency.result import Example, SaliencyResult, condition_table, label_for_code
from ecgstudy.stages.saliency.scored import explain_with_masks, select_pairs
from ecgstudy.stages.saliency.write import draw_examples, draw_summary, write_tables

__all__ = [
    "ClassifierChoice", "Example", "SaliencyConfig", "SaliencyResult", "ToyClassifier", "condition_table",
    "draw_examples", "draw_summary", "explain", "explain_with_masks", "explain_without_masks", "label_for_code",
    "run", "select_pairs", "select_positive_pairs", "synthetic_bump_task", "synthetic_check", "write_tables",
]


def explain(cfg: SaliencyConfig, store_dir: str | Path, classifier_path: str | Path, seed: int,
            classifier: str | None = None) -> SaliencyResult:
    """Explain a fine-tuned classifier on a store's held-out records; score against the true masks if any.

    Nothing is written (:func:`run` writes the stage's files).

    Parameters
    ----------
    cfg : saliency section of params.yaml.
    store_dir : curated store (docs/architecture.md, "Curated store"); with ``signature_masks.parquet``
        (times in the stored window) the maps are scored (:func:`explain_with_masks`), without it (real
        data) they are described per lead instead (:func:`explain_without_masks`).
    classifier_path : classifier checkpoint (``ecgstudy.models.checkpoint``), whose preprocessing must be
        the store's.
    seed : study seed (record sample, random reference maps, bootstrap, synthetic check).
    classifier : the classifier's name in the metrics; default the checkpoint's file stem.
    """
    rng = np.random.default_rng(seed)
    store, model, info = open_store_and_model(store_dir, classifier_path, num_threads=cfg.num_threads,
                                              load=load_classifier)
    name = classifier or Path(classifier_path).stem
    spans = store.signature_masks()
    if spans is None:
        return explain_without_masks(cfg, store, model, info, name, rng, seed)
    return explain_with_masks(cfg, store, model, info, name, rng, seed, spans)


def run(cfg, root: Path | None = None) -> SaliencyResult:
    """The saliency stage: explain the chosen classifier, then write every output.

    Parameters
    ----------
    cfg : ``ecgstudy.config.stage_config("saliency", params)`` (``seed``, ``data``, ``saliency``).
    root : repository root the inputs are read from and the outputs written under (default
        :func:`ecgstudy.paths.repo_root`). The inputs, the store ``<data.curated>/<saliency.store>`` and the
        classifier ``models/finetune/<strategy>_<fraction>.pt``, are resolved by :mod:`ecgstudy.stages.artifacts`,
        which raises MissingArtifact naming the stage that writes a missing one.

    Writes, under ``root``: ``reports/tables/saliency/*.csv`` and ``reports/plots/saliency/*.csv``
    (:func:`write_tables`), the summary figure and the example overlays in ``reports/figures/saliency/``
    (:func:`draw_summary`, :func:`draw_examples`, drawn after the metrics are computed), and
    ``reports/metrics/saliency.json``. Returns the result with the paths written filled in.
    """
    section, pick = cfg.saliency, cfg.saliency.classifier
    store_dir = artifacts.store_path(cfg.data.curated, section.store, root)
    checkpoint = artifacts.classifier_path(pick.strategy, pick.fraction, root)
    name = artifacts.classifier_name(pick.strategy, pick.fraction).removesuffix(".pt")
    result = explain(section, store_dir, checkpoint, cfg.seed, classifier=name)
    out = stage_outputs("saliency", root, plots=True)
    result.tables = write_tables(result, out.tables, out.plots)
    result.figures = {"summary": draw_summary(result, out.figures)}
    result.example_figures = draw_examples(result, out.figures)
    result.metrics_file = out.write_metrics(result.metrics)
    return result
