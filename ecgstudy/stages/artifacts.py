"""Files one stage writes and a later stage reads, declared once by the stage that produces them.

A consumer never spells another stage's path: it asks for the artifact here, and the links between
params.yaml sections (which pretraining run's encoder, which fine-tuned classifier) are checked when the
parameters are loaded (:func:`check_links`, called by :func:`ecgstudy.config.validate_all`), before any
stage does work. A missing upstream file fails at the start of the consuming stage (:func:`require`),
naming the file and the stage that writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecgstudy.paths import repo_root, resolve

#: pretrain: one checkpoint per run (``<run>.pt``) and the kept run's encoder.
PRETRAIN_MODELS = "models/pretrain"
KEPT_ENCODER = "encoder.pt"
#: pretrain: beside each run's checkpoint, its random-init twin (same init, batch norm re-estimated on the
#: same records): the baseline of random_probe and scratch (``stages.common.random_twin``).
TWIN_NAME = "{run}.random_init.pt"
#: pretrain: validation-split probe scores of every run and random-init twin (evaluate stage input).
PROBE_SCORES = "models/pretrain/probe_scores.npz"
#: finetune: one classifier per strategy x label fraction, and every model's evaluation-split scores.
FINETUNE_MODELS = "models/finetune"
FINETUNE_SCORES = "models/finetune/scores.npz"
#: transfer: the test-part scores of every condition, size, strategy and repeat.
TRANSFER_SCORES = "models/transfer/scores.npz"
#: ``encoder:`` value meaning "the run named by pretrain.keep".
KEEP = "keep"
#: curate: the pretraining corpus's store (role ``foundation``) and the downstream stores.
FOUNDATION_STORE = "foundation"
DOWNSTREAM_STORES = ("main", "rare")
#: How a real-data profile declares its pretraining corpus (the hint of every refusal).
DECLARE_FOUNDATION = ("declare a pretraining corpus in params.yaml, e.g. data.foundation: {source: code15, "
                      "root: data/raw/code15} (profiles/ptbxl.yaml does), and rerun curate")


class MissingArtifact(FileNotFoundError):
    """An upstream stage's output is absent: names the file and the stage that writes it."""


def require(path: str | Path, producer: str, root: Path | None = None) -> Path:
    """``path`` (resolved from ``root``, default the repository root) if it exists, else :class:`MissingArtifact`."""
    full = resolve(path, root)
    if not full.exists():
        raise MissingArtifact(f"{shown(full)} not found: it is written by the {producer!r} stage; run it first "
                              f"(`make repro STAGE={producer}`)")
    return full


def stage_metrics(stage: str, root: Path | None = None) -> Path:
    """Path of a stage's metrics JSON (``reports/metrics/<stage>.json``; may not exist yet)."""
    return resolve(Path("reports") / "metrics" / f"{stage}.json", root)


def encoder_path(run: str = KEEP, root: Path | None = None) -> Path:
    """Checkpoint of a pretraining run's encoder: ``encoder.pt`` for ``keep``, else ``<run>.pt``."""
    name = KEPT_ENCODER if run == KEEP else f"{run}.pt"
    return require(Path(PRETRAIN_MODELS) / name, "pretrain", root)


def twin_path(models_dir: str | Path, run: str) -> Path:
    """Where pretraining run ``run``'s random-init twin is (or goes) in ``models_dir`` (not checked)."""
    return Path(models_dir) / TWIN_NAME.format(run=run)


def classifier_name(strategy: str, fraction: float) -> str:
    """File name of a fine-tuned classifier: ``<strategy>_<fraction>.pt``."""
    return f"{strategy}_{fraction:g}.pt"


def classifier_path(strategy: str, fraction: float, root: Path | None = None) -> Path:
    """Checkpoint of the classifier fine-tuned with ``strategy`` on ``fraction`` of the training patients."""
    return require(Path(FINETUNE_MODELS) / classifier_name(strategy, fraction), "finetune", root)


def store_path(curated: str, store: str, root: Path | None = None) -> Path:
    """A curated store folder (``foundation``, ``main`` or ``rare``) under ``data.curated``."""
    return require(Path(curated) / store, "curate", root)


def pretraining_store(curated: str, store: str, root: Path | None = None) -> Path:
    """The store pretraining reads: it must exist and be a foundation corpus (meta.json ``role``).

    Raises ValueError naming the store and ``pretrain.store`` when it is a downstream store, and
    :class:`MissingArtifact` with :data:`DECLARE_FOUNDATION` when no foundation corpus was curated.
    """
    import json

    path = resolve(Path(curated) / store, root)
    meta_file = path / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else None
    if meta is None:
        raise MissingArtifact(f"{shown(path)} is not a curated store: run the 'curate' stage first "
                              f"(`make repro STAGE=curate`)")
    role = meta.get("role")
    if role == "none":
        raise MissingArtifact(f"pretrain.store = {store!r}: no foundation corpus was curated "
                              f"({meta.get('reason', 'none declared')}); {DECLARE_FOUNDATION}")
    if role != "foundation":
        raise ValueError(f"pretrain.store = {store!r}: store {shown(path)} has role {role!r}, not 'foundation'; "
                         "pretraining reads only the foundation corpus, never downstream or external records")
    return path


def check_links(sections: dict[str, Any]) -> None:
    """Check the links between typed params sections (``{"pretrain": PretrainConfig, ...}``).

    - ``pretrain.store``: the foundation store; ``pretrain.probe.store``: a downstream store (the probe
      comparison never scores foundation records);
    - ``finetune.encoder``, ``transfer.encoder``, ``latent.encoder``: ``keep`` or a ``pretrain.runs`` name;
    - ``saliency.classifier``: a strategy in ``finetune.strategies`` at a fraction in ``finetune.fractions``.

    Raises ValueError naming the key, its value and what is valid. Sections absent from ``sections`` are
    not checked.
    """
    pretrain, finetune = sections.get("pretrain"), sections.get("finetune")
    if pretrain is not None:
        if pretrain.store != FOUNDATION_STORE:
            raise ValueError(f"pretrain.store = {pretrain.store!r}: pretraining reads only the foundation corpus "
                             f"(store {FOUNDATION_STORE!r}), never downstream or external records")
        if pretrain.probe.store not in DOWNSTREAM_STORES:
            raise ValueError(f"pretrain.probe.store = {pretrain.probe.store!r}: the probe comparison trains and "
                             f"scores on a downstream store's train -> val splits; valid: {list(DOWNSTREAM_STORES)}")
        runs = [r.name for r in pretrain.runs]
        for name in ("finetune", "transfer", "latent"):
            cfg = sections.get(name)
            if cfg is not None and cfg.encoder != KEEP and cfg.encoder not in runs:
                raise ValueError(f"{name}.encoder = {cfg.encoder!r} is not a pretraining run; valid: "
                                 f"{[KEEP, *runs]} (pretrain.runs names, or keep = pretrain.keep)")
    saliency = sections.get("saliency")
    if saliency is not None and finetune is not None:
        pick = saliency.classifier
        if pick.strategy not in finetune.strategies:
            raise ValueError(f"saliency.classifier.strategy = {pick.strategy!r} is not trained: finetune.strategies "
                             f"= {list(finetune.strategies)}")
        if not any(abs(pick.fraction - f) < 1e-12 for f in finetune.fractions):
            raise ValueError(f"saliency.classifier.fraction = {pick.fraction:g} is not trained: finetune.fractions "
                             f"= {list(finetune.fractions)}")


def shown(path: Path) -> str:
    """``path`` relative to the repository root when inside it (messages and metrics hold no machine paths)."""
    try:
        return str(path.resolve().relative_to(repo_root()))
    except (ValueError, FileNotFoundError):
        return str(path)
