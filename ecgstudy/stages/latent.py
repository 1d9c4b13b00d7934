"""Latent stage: what does the pretrained encoder's embedding space hold?

Embeds store records with the pretrained encoder and with its random-init twin (the pretraining run's
own initial weights, batch norm re-estimated on the same records: the baseline every self-supervised
claim must beat, differing from the pretrained encoder by pretraining only), then

- scores a k-nearest-neighbour probe: fitted on the embeddings of the probe split (train), macro AUROC and
  AUPRC of its neighbour-vote probabilities on the evaluation split (test), one label at a time
  (multi-label), over a fixed label set decided from label counts (``min_positives`` positives and
  negatives in both samples), with patient-level statistics (:mod:`ecgstudy.engine.arms`): a cluster
  bootstrap over the evaluation sample's patients (no redraw: a label without both classes in a resample
  is skipped there and counted) and the paired difference pretrained - random init on the same patient
  draws. The encoder is trained once and the k-NN probe has no training randomness: one repeat;
- scores how much the embedding encodes the recording site (k-NN balanced accuracy; chance = 1/sites),
  the domain shift that external validation has to overcome;
- scores how much it encodes age and sex (k-NN regression: mean absolute error in years against
  predicting the probe sample's mean age; k-NN sex AUROC), each with a patient-bootstrap interval and the
  paired pretrained - random init difference: the ECG carries both (a 12-lead CNN trained on ~500,000 ECGs
  reached age MAE 6.9 years and sex AUROC 0.97, Attia et al. 2019, Circ Arrhythm Electrophysiol); here it
  measures whether the simulator's age and sex effects (simulate/SOURCES.md) are learnable at all;
- projects the evaluation records (plus e.g. the external split) to 2-D with UMAP for the figure
  coloured by diagnosis and by site.

Embeddings are standardised per dimension (statistics of the probe split) before the probe and UMAP,
so the random encoder's arbitrary feature scales do not decide its neighbours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import average_precision_score, balanced_accuracy_score, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ecgstudy.data.describe import primary_diagnosis
from ecgstudy.data.labels import task_labels
from ecgstudy.data.store import ECGDataset, Store
from ecgstudy.engine import arms, resample
from ecgstudy.engine.multiplicity import percentile_interval
from ecgstudy.plots import latent as latent_plots
from ecgstudy.stages import artifacts
from ecgstudy.stages.common import open_store_and_model, random_twin
from ecgstudy.stages.outputs import StageOutputs, stage_outputs

ENCODERS: tuple[str, ...] = ("pretrained", "random_init")  # names used in tables, metrics and figures
SPLITS: tuple[str, ...] = ("train", "val", "test", "external")  # store splits (docs/architecture.md, "Curated store")


@dataclass(frozen=True)
class LatentConfig:
    """params.yaml section ``latent``."""

    store: str = "main"  # store folder under data.curated
    encoder: str = "keep"  # pretraining run whose encoder is embedded: keep = pretrain.keep, or a pretrain.runs name
    probe_split: str = "train"  # split the k-NN probe is fitted on
    eval_split: str = "test"  # split the probe is scored on; also drawn in the UMAP
    extra_splits: tuple[str, ...] = ("external",)  # drawn in the UMAP too (site shift); absent splits skipped
    max_probe_records: int = 2000  # seeded sample of the probe split (embedding cost on 2 cores)
    max_eval_records: int = 1000  # seeded sample of each drawn split
    task: str = "all"  # label task of the probe (see ecgstudy.data.labels.TASKS)
    min_positives: int = 5  # fixed label set: labels with >= this many positives and negatives in the probe and the eval sample
    k: int = 15  # neighbours voting in the k-NN probe
    n_boot: int = 1000  # cluster-bootstrap resamples of the evaluation sample's patients (intervals, paired difference)
    ci: float = 0.95  # interval level (one comparison per metric: pretrained - random init)
    knn_metric: str = "cosine"  # neighbour distance on standardised embeddings
    umap_neighbors: int = 15  # UMAP n_neighbors: local vs global structure
    umap_min_dist: float = 0.1  # UMAP min_dist: how tightly points pack
    umap_epochs: int = 200  # UMAP optimisation epochs (umap-learn's default for large data)
    batch_size: int = 256  # records per forward pass (no gradients)
    num_threads: int = 0  # torch CPU threads (0 = torch default)

    def validate(self) -> None:
        if self.k < 1 or self.umap_neighbors < 2 or self.umap_epochs < 1 or self.batch_size < 1 or self.n_boot < 1:
            raise ValueError("k, n_boot, umap_epochs, batch_size >= 1 and umap_neighbors >= 2 are required")
        if not 0.0 < self.ci < 1.0:
            raise ValueError(f"ci must be in (0, 1), got {self.ci}")
        if self.max_probe_records < self.k or self.max_eval_records < 2:
            raise ValueError("max_probe_records must be >= k and max_eval_records >= 2")
        if not 0.0 <= self.umap_min_dist <= 1.0:
            raise ValueError(f"umap_min_dist must be in [0, 1], got {self.umap_min_dist}")
        bad = [s for s in (self.probe_split, self.eval_split, *self.extra_splits) if s not in SPLITS]
        if bad:
            raise ValueError(f"unknown split(s) {bad}; valid: {list(SPLITS)}")
        if self.probe_split == self.eval_split:
            raise ValueError(f"probe_split and eval_split are both {self.eval_split!r}: the probe would be "
                             "scored on the records it was fitted on")


@dataclass
class LatentResult:
    """What the latent stage produces.

    Attributes
    ----------
    coords : one row per (encoder, drawn record): encoder, record_id, split, site, diagnosis, umap_x, umap_y
    probe : per-label k-NN scores: encoder, label, auroc, auprc, n_pos_train (probe split), n_pos_test (eval split)
    metrics : flat-ish dict for reports/metrics/latent.json
    figures : {name: PNG path} of the figures written by :func:`run` (``umap``, ``knn_probe_auroc``)
    """

    coords: pd.DataFrame
    probe: pd.DataFrame
    metrics: dict = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)

    @property
    def subtitles(self) -> dict[str, str]:
        """Per-encoder figure subtitle: its k-NN probe score."""
        return {enc: "k-NN macro AUROC {:.3f} ({:.3f}-{:.3f}), {} labels".format(
                    *(self.metrics[enc][k] for k in ("knn_macro_auroc", "knn_macro_auroc_low", "knn_macro_auroc_high")),
                    self.metrics.get("n_labels", "?"))
                for enc in ENCODERS if enc in self.metrics}


# --------------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------------
def embed_batches(model: nn.Module, batches: Iterable[dict]) -> np.ndarray:
    """Pooled embeddings of batches ``{"x": (B, 12, T), "lead_mask": (B, 12) bool}``: float32 (N, D).

    ``model`` needs ``embed(x, lead_mask) -> (B, D)``; it is put in eval mode and run without gradients.
    """
    model.eval()
    chunks = []
    with torch.no_grad():
        for batch in batches:
            z = model.embed(batch["x"].float(), batch.get("lead_mask"))  # (B, D)
            chunks.append(z.float().numpy())
    if not chunks:
        raise ValueError("no records to embed")
    return np.concatenate(chunks).astype(np.float32)


def embed_dataset(model: nn.Module, dataset: Dataset, batch_size: int = 256) -> np.ndarray:
    """Embeddings (N, D) of a dataset whose items are dicts with ``x`` (12, T) and ``lead_mask`` (12,)."""
    return embed_batches(model, DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0))


def standardise(fit_on: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """Scale each array's columns by the mean and sd of ``fit_on`` (sd 0 -> 1); returns fit_on first."""
    mean = fit_on.mean(axis=0)
    sd = fit_on.std(axis=0)
    sd[sd == 0] = 1.0
    return [(a - mean) / sd for a in (fit_on, *arrays)]


# --------------------------------------------------------------------------------------------------
# Probes and projection
# --------------------------------------------------------------------------------------------------
def knn_scores(train_z: np.ndarray, train_y: np.ndarray, test_z: np.ndarray, k: int = 15,
               metric: str = "cosine") -> np.ndarray:
    """Neighbour-vote probability of each label for each test record: float (N_test, L).

    Parameters
    ----------
    train_z, test_z : embeddings (N_train, D) and (N_test, D).
    train_y : 0/1 label matrix (N_train, L); multi-label, one vote per label.
    k, metric : neighbours and distance of :class:`sklearn.neighbors.KNeighborsClassifier`.

    A label with a single class among the training records gets its training prevalence everywhere (a
    constant: AUROC 0.5).
    """
    train_y = np.asarray(train_y) > 0.5
    scores = np.tile(train_y.mean(axis=0), (len(test_z), 1)).astype(np.float64)
    usable = [j for j in range(train_y.shape[1]) if 0 < train_y[:, j].sum() < len(train_y)]
    if usable:
        clf = KNeighborsClassifier(n_neighbors=min(k, len(train_z)), metric=metric)
        targets = train_y[:, usable].astype(int)
        clf.fit(train_z, targets if len(usable) > 1 else targets[:, 0])
        proba = clf.predict_proba(test_z)  # one (N_test, 2) array per label
        proba = proba if isinstance(proba, list) else [proba]
        for j, p in zip(usable, proba):
            scores[:, j] = p[:, 1]
    return scores


def knn_probe(train_z: np.ndarray, train_y: np.ndarray, test_z: np.ndarray, test_y: np.ndarray,
              labels: list[str], k: int = 15, metric: str = "cosine") -> pd.DataFrame:
    """k-NN multi-label probe: per-label AUROC of the neighbour vote (:func:`knn_scores`).

    Parameters
    ----------
    train_z, test_z, train_y, k, metric : see :func:`knn_scores`.
    test_y : 0/1 label matrix (N_test, L).
    labels : the L label names.

    Returns
    -------
    DataFrame with label, auroc and auprc (NaN where the test set lacks positives or negatives),
    n_pos_train, n_pos_test.
    """
    train_y, test_y = np.asarray(train_y) > 0.5, np.asarray(test_y) > 0.5
    scores = knn_scores(train_z, train_y, test_z, k, metric)
    rows = []
    for j, name in enumerate(labels):
        n_pos = int(test_y[:, j].sum())
        ok = 0 < n_pos < len(test_y)
        rows.append({"label": name, "auroc": float(roc_auc_score(test_y[:, j], scores[:, j])) if ok else np.nan,
                     "auprc": float(average_precision_score(test_y[:, j], scores[:, j])) if ok else np.nan,
                     "n_pos_train": int(train_y[:, j].sum()), "n_pos_test": n_pos})
    return pd.DataFrame(rows)


def knn_group_accuracy(train_z: np.ndarray, train_g: np.ndarray, test_z: np.ndarray, test_g: np.ndarray,
                       k: int = 15, metric: str = "cosine") -> float:
    """Balanced accuracy of a k-NN classifier predicting a group (e.g. site) from embeddings (NaN if < 2 groups)."""
    train_g, test_g = np.asarray(train_g).astype(str), np.asarray(test_g).astype(str)
    if len(set(train_g)) < 2 or len(set(test_g)) < 2:
        return float("nan")
    clf = KNeighborsClassifier(n_neighbors=min(k, len(train_z)), metric=metric).fit(train_z, train_g)
    return float(balanced_accuracy_score(test_g, clf.predict(test_z)))


def umap_2d(z: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, n_epochs: int = 200,
            seed: int = 0) -> np.ndarray:
    """UMAP projection of embeddings (N, D) to (N, 2), seeded (umap-learn then runs single-threaded).

    The first call in a process pays about 30 s of numba compilation. UMAP amplifies a last-bit change
    of its input into a different layout, so its input must be bit-identical between runs: numba's
    OpenMP threading layer, started by the first fit, sets the process-wide OpenMP thread count to every
    core, which torch reads, and later forward passes would then run with another number of threads (and
    round differently). Torch's thread count is put back after the fit.
    """
    import umap  # heavy import (numba): only when needed

    threads = torch.get_num_threads()
    try:
        reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(z) - 1), min_dist=min_dist, n_epochs=n_epochs,
                            random_state=seed, n_components=2, n_jobs=1)
        return reducer.fit_transform(z).astype(np.float32)
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """The records one latent run embeds, and what is known of every store record.

    Rows index the store (0..N-1, store order). ``y`` (N, L) holds the fixed label set of the task (0/1);
    ``drawn`` maps each split drawn in the UMAP (evaluation split first) to its rows; ``site``,
    ``diagnosis`` (:func:`primary_diagnosis`), ``record_id`` and ``patient`` (the resampling unit) are
    (N,) string arrays.
    """

    probe_rows: np.ndarray
    eval_rows: np.ndarray
    drawn: dict[str, np.ndarray]
    y: np.ndarray
    labels: list[str]
    site: np.ndarray
    diagnosis: np.ndarray
    record_id: np.ndarray
    patient: np.ndarray
    age: np.ndarray | None = None  # (N,) years, nan where unknown; None: the store has no age column
    sex: np.ndarray | None = None  # (N,) 0 male / 1 female, nan where unknown; None: no sex column

    @property
    def draw_rows(self) -> np.ndarray:
        """Rows drawn in the UMAP, split after split (evaluation split first)."""
        return np.concatenate(list(self.drawn.values()))


@dataclass
class EncoderScores:
    """One encoder's outcome: per-label probe table, probe scores (N_eval, L), site accuracy, the
    standardised embeddings (N_draw, D) of the records drawn in the UMAP, embedding width."""

    probe: pd.DataFrame
    scores: np.ndarray
    site_accuracy: float
    z_draw: np.ndarray
    embed_dim: int
    demographics: dict[str, np.ndarray] = field(default_factory=dict)  # knn_demographics of the eval sample


def knn_demographics(train_z: np.ndarray, train_age: np.ndarray, train_sex: np.ndarray, test_z: np.ndarray,
                     k: int = 15, metric: str = "cosine") -> dict[str, np.ndarray]:
    """k-NN age and sex predictions for the test embeddings (N_test, D) from the train ones (N_train, D).

    ``train_age`` (years) and ``train_sex`` (0/1) are (N_train,) with nan where unknown (those records are
    left out of that fit). Returns {"age": predicted years (N_test,), "sex": neighbour share of sex 1
    (N_test,)}; an entry is all nan when fewer than ``k`` train records (or a single sex) are known.
    """
    out = {}
    for name, target in (("age", train_age), ("sex", train_sex)):
        known = np.isfinite(np.asarray(target, dtype=np.float64))
        values = np.asarray(target, dtype=np.float64)[known]
        if known.sum() < k or (name == "sex" and len(np.unique(values)) < 2):
            out[name] = np.full(len(test_z), np.nan)
        elif name == "age":
            out[name] = KNeighborsRegressor(n_neighbors=k, metric=metric).fit(train_z[known], values).predict(test_z)
        else:
            clf = KNeighborsClassifier(n_neighbors=k, metric=metric).fit(train_z[known], values.astype(int))
            out[name] = clf.predict_proba(test_z)[:, list(clf.classes_).index(1)]
    return out


def _sample(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` of ``rows`` drawn without replacement, sorted (store order)."""
    rows = np.asarray(rows)
    return np.sort(rng.choice(rows, size=n, replace=False)) if len(rows) > n else np.sort(rows)


def sample_records(cfg: LatentConfig, store: Store, rng: np.random.Generator) -> Sample:
    """Draw the probe, evaluation and extra UMAP samples of ``store`` (signals (N, 12, T) at ``store.fs`` Hz).

    The probe's labels are those of ``cfg.task`` with ``cfg.min_positives`` positives in the probe split
    (records with none of them are left out: the PTB-XL benchmark rule), then the fixed label set: those
    with ``cfg.min_positives`` positives and as many negatives in both samples, decided from label counts
    before any embedding (:func:`ecgstudy.engine.resample.fixed_label_set`). ``rng`` draws the probe sample,
    the evaluation sample, then each extra split's, in that order. Patients are the store's
    ``patient_id`` (each record its own patient where the store has none).
    """
    records = store.records.reset_index(drop=True)
    # labels chosen on the probe split; records without any of them leave the task (PTB-XL benchmark rule)
    task = task_labels(store, cfg.task, min_positives=cfg.min_positives, within=store.indices(cfg.probe_split))

    def rows_of(split: str, n: int) -> np.ndarray:
        rows = store.indices(split)
        return _sample(rows[task.keep[rows]], n, rng)

    probe_rows = rows_of(cfg.probe_split, cfg.max_probe_records)
    eval_rows = rows_of(cfg.eval_split, cfg.max_eval_records)
    if len(probe_rows) <= cfg.k or len(eval_rows) < 2:
        raise ValueError(f"{store.path}: too few records for the k-NN probe ({len(probe_rows)} in split "
                         f"{cfg.probe_split!r}, {len(eval_rows)} in {cfg.eval_split!r}; k={cfg.k})")
    drawn = {cfg.eval_split: eval_rows}
    for split in cfg.extra_splits:
        if split not in drawn and len(rows := rows_of(split, cfg.max_eval_records)):
            drawn[split] = rows
    y = task.y
    keep = resample.fixed_label_set({"probe": y[probe_rows], "eval": y[eval_rows]}, cfg.min_positives)
    labels = [task.names[j] for j in keep]
    if not labels:
        raise ValueError(f"{store.path}: no {cfg.task!r} label has {cfg.min_positives} positives and negatives "
                         f"in both the probe and the evaluation sample")
    site = records["site"].astype(str).to_numpy() if "site" in records else np.full(len(records), "unknown")
    ids = records["record_id"].astype(str).to_numpy()
    patient = records["patient_id"].astype(str).to_numpy() if "patient_id" in records else ids
    known = {c: pd.to_numeric(records[c], errors="coerce").to_numpy(dtype=np.float64) if c in records else None
             for c in ("age", "sex")}
    return Sample(probe_rows, eval_rows, drawn, y[:, keep], labels, site,
                  primary_diagnosis(records, store.meta.get("label_info", {})).to_numpy(), ids, patient,
                  age=known["age"], sex=known["sex"])


def score_encoder(name: str, model: nn.Module, store: Store, sample: Sample, cfg: LatentConfig,
                  normalise: str | None) -> EncoderScores:
    """Embed the sampled records with ``model``, then k-NN probe them (diagnosis labels, site).

    Embeddings (N, D) are standardised with the probe sample's statistics. No UMAP here: every encoder is
    embedded before any projection (:func:`umap_2d`).
    """
    draw_rows = sample.draw_rows
    unique_rows = np.unique(np.concatenate([sample.probe_rows, draw_rows]))
    position = {r: i for i, r in enumerate(unique_rows)}
    z_all = embed_dataset(model, ECGDataset(store, unique_rows, normalise=normalise), cfg.batch_size)
    z_probe, z_eval, z_draw = standardise(*(z_all[[position[r] for r in rows]]
                                            for rows in (sample.probe_rows, sample.eval_rows, draw_rows)))
    y_probe, y_eval = sample.y[sample.probe_rows], sample.y[sample.eval_rows]
    probe = knn_probe(z_probe, y_probe, z_eval, y_eval, sample.labels, cfg.k, cfg.knn_metric).assign(encoder=name)
    scores = knn_scores(z_probe, y_probe, z_eval, cfg.k, cfg.knn_metric)
    site = knn_group_accuracy(z_probe, sample.site[sample.probe_rows], z_eval, sample.site[sample.eval_rows],
                              cfg.k, cfg.knn_metric)
    demographics = {} if sample.age is None or sample.sex is None else knn_demographics(
        z_probe, sample.age[sample.probe_rows], sample.sex[sample.probe_rows], z_eval, cfg.k, cfg.knn_metric)
    return EncoderScores(probe, scores, site, z_draw, int(z_all.shape[1]), demographics)


def demographic_statistics(sample: Sample, predictions: dict[str, dict[str, np.ndarray]], cfg: LatentConfig,
                           seed: int) -> dict:
    """Age MAE and sex AUROC of each encoder's k-NN predictions on the evaluation sample, with intervals.

    ``predictions``: {encoder: :func:`knn_demographics` output} for :data:`ENCODERS`. Intervals: cluster
    bootstrap over the evaluation sample's patients (``cfg.n_boot``, its own seed stream); the same draws
    give the paired pretrained - random init differences. ``age_mae_mean_predictor``: the MAE of
    predicting the probe sample's mean age for everyone (what an embedding without age information scores).
    Returns {} when the store has no age or sex.
    """
    if sample.age is None or sample.sex is None or not all(predictions.get(e) for e in ENCODERS):
        return {}
    rows = sample.eval_rows
    age, sex = sample.age[rows], sample.sex[rows]
    w = resample.patient_weights(sample.patient[rows], cfg.n_boot, resample.seed_for(seed, "latent", "demographics"))
    known_sex = np.isfinite(sex)
    whole = np.ones((len(rows), 1), dtype=np.int32)  # the full sample as one more weight column

    def values(name: str) -> dict[str, np.ndarray]:
        """{metric: (1 + B,) on the full sample, then on each resample} of one encoder's predictions."""
        weights = np.hstack([whole, w])
        error = np.abs(predictions[name]["age"] - age)
        scored = known_sex & np.isfinite(predictions[name]["sex"])  # nan: too few known sexes to fit
        auroc = resample.weighted_metrics(sex[scored], predictions[name]["sex"][scored], weights[scored])
        return {"age_mae": resample.weighted_means(error, weights), "sex_auroc": auroc["auroc"]}

    computed = {name: values(name) for name in ENCODERS}
    per_encoder: dict = {}
    for name, metrics in computed.items():
        per_encoder[name] = {}
        for metric, v in metrics.items():
            low, high = percentile_interval(v[1:], cfg.ci)
            per_encoder[name].update({f"knn_{metric}": float(v[0]), f"knn_{metric}_low": low, f"knn_{metric}_high": high})
    out: dict = {"per_encoder": per_encoder}
    for metric in ("age_mae", "sex_auroc"):
        diff = computed["pretrained"][metric] - computed["random_init"][metric]
        out[f"knn_{metric}_gain_over_random"] = float(diff[0])
        out[f"knn_{metric}_gain_low"], out[f"knn_{metric}_gain_high"] = percentile_interval(diff[1:], cfg.ci)
    out["demographics"] = {
        "age_mae_mean_predictor": float(np.nanmean(np.abs(np.nanmean(sample.age[sample.probe_rows]) - age))),
        "n_age": int(np.isfinite(age).sum()), "n_sex": int(known_sex.sum()),
        "female_share": float(np.nanmean(sex)),
        "published": "12-lead CNN on ~500,000 ECGs: age MAE 6.9 years, sex AUROC 0.97 (Attia et al. 2019)",
        "note": "lower age MAE is better: a negative age_mae gain means the pretrained encoder predicts age better",
    }
    return out


def probe_statistics(sample: Sample, scores: dict[str, np.ndarray], cfg: LatentConfig, seed: int) -> dict:
    """Patient-level statistics of the k-NN probe of each encoder and of the paired difference.

    Parameters
    ----------
    sample : the records (targets of the fixed label set, patients).
    scores : {encoder: neighbour-vote probabilities (N_eval, L)} for :data:`ENCODERS`.
    cfg : ``n_boot`` and ``ci``.
    seed : study seed; the patient draws come from :func:`ecgstudy.engine.resample.seed_for` (seed, "latent").

    Returns
    -------
    ``{encoder: {knn_macro_auroc, _low, _high, knn_macro_auprc, _low, _high}}`` and, per metric m,
    ``knn_<m>_gain_over_random`` (pretrained - random init on the full evaluation sample) with its interval
    ``knn_<m>_gain_low`` / ``_high`` at ``knn_<m>_gain_level`` and p-value ``knn_<m>_gain_p_value``
    (one comparison per metric, so Holm leaves them as they are), and ``statistics`` (resampling record).
    """
    y = sample.y[sample.eval_rows]
    patients = sample.patient[sample.eval_rows]
    labels = np.arange(y.shape[1])
    sampler = arms.Resampler(y, patients, labels, cfg.n_boot, resample.seed_for(seed, "latent"))
    computed = {name: sampler.arm([scores[name]]) for name in ENCODERS}
    out: dict = {}
    for name, arm in computed.items():
        out[name] = {}
        for metric in resample.METRICS:
            summary = sampler.summary(arm, metric, cfg.ci)
            out[name].update({f"knn_macro_{metric}": summary[metric], f"knn_macro_{metric}_low": summary[f"{metric}_low"],
                              f"knn_macro_{metric}_high": summary[f"{metric}_high"]})
    for metric in resample.METRICS:
        row, diffs = sampler.difference(computed["pretrained"], computed["random_init"], metric)
        arms.adjust_family([row], [diffs], 1.0 - cfg.ci)
        gain = f"knn_{metric}_gain"
        out.update({f"{gain}_over_random": row["diff"], f"{gain}_low": row["low"], f"{gain}_high": row["high"],
                    f"{gain}_level": row["level"], f"{gain}_p_value": row["p_value"]})
    out["statistics"] = {
        "resampling": "cluster bootstrap over the evaluation sample's patients, no redraw",
        "n_boot": cfg.n_boot, "level": cfg.ci, "n_records": int(len(y)), "n_patients": sampler.n_patients,
        "repeats": 1, "skipped_label_draws": sampler.skipped_draws,
        "label_set": {"k": cfg.min_positives, "rule": "positives and negatives in the probe and the evaluation sample",
                      "n_labels": len(sample.labels), "labels": list(sample.labels)},
        "family": "pretrained - random init, one comparison per metric (Holm over a family of one)",
    }
    return out


def run_latent(cfg: LatentConfig, store_dir: str | Path, encoder_path: str | Path, seed: int) -> LatentResult:
    """Embed, probe and project a store with the pretrained encoder and its random-init twin (no files written).

    The store and checkpoint are opened by :func:`ecgstudy.stages.common.open_store_and_model` (the
    checkpoint's preprocessing must match the store's). The random-init encoder is the pretraining run's
    twin (its initial weights, batch norm re-estimated on the same records:
    :func:`ecgstudy.stages.common.random_twin`); without one the stage refuses (MissingArtifact).

    Parameters
    ----------
    cfg : latent section of params.yaml.
    store_dir : curated store (docs/architecture.md, "Curated store").
    encoder_path : encoder checkpoint of a pretraining run (its twin beside it).
    seed : study seed (record samples, patient resamples, UMAP).
    """
    store, pretrained, info = open_store_and_model(store_dir, encoder_path, num_threads=cfg.num_threads)
    twin, baseline = random_twin(encoder_path, info, require=True)  # same init and batch-norm records as pretrained
    sample = sample_records(cfg, store, np.random.default_rng(seed))
    normalise = info["preprocessing"].get("normalise")
    encoders = {"pretrained": pretrained, "random_init": twin}
    scored = {name: score_encoder(name, model, store, sample, cfg, normalise) for name, model in encoders.items()}
    stats = probe_statistics(sample, {name: s.scores for name, s in scored.items()}, cfg, seed)
    n_sites = len(set(sample.site[sample.probe_rows]))
    demographics = demographic_statistics(sample, {name: s.demographics for name, s in scored.items()}, cfg, seed)
    per_encoder = demographics.pop("per_encoder", {})
    metrics: dict = {name: {**stats.pop(name), "knn_site_balanced_accuracy": s.site_accuracy, **per_encoder.get(name, {})}
                     for name, s in scored.items()}
    metrics.update(stats)
    metrics.update(demographics)
    metrics.update({
        "site_chance_accuracy": 1.0 / n_sites if n_sites else float("nan"),
        "n_probe": int(len(sample.probe_rows)), "n_eval": int(len(sample.eval_rows)),
        "n_drawn": int(len(sample.draw_rows)), "n_labels": len(sample.labels), "task": cfg.task, "k": cfg.k,
        "baseline_init": baseline,
        "embed_dim": scored["random_init"].embed_dim,
    })
    draw_rows = sample.draw_rows
    coords = []
    for name, s in scored.items():  # every embedding is computed before the first UMAP fit
        xy = umap_2d(s.z_draw, cfg.umap_neighbors, cfg.umap_min_dist, cfg.umap_epochs, seed)
        coords.append(pd.DataFrame({
            "encoder": name, "record_id": sample.record_id[draw_rows],
            "split": np.concatenate([[split] * len(r) for split, r in sample.drawn.items()]),
            "site": sample.site[draw_rows], "diagnosis": sample.diagnosis[draw_rows],
            "umap_x": xy[:, 0], "umap_y": xy[:, 1],
        }))
    probe = pd.concat([s.probe for s in scored.values()], ignore_index=True)
    return LatentResult(pd.concat(coords, ignore_index=True),
                        probe[["encoder", "label", "auroc", "auprc", "n_pos_train", "n_pos_test"]], metrics)


def write_tables(result: LatentResult, tables_dir: str | Path, plots_dir: str | Path) -> None:
    """Write the per-label probe table (report) and the UMAP coordinates (for a ``dvc plots`` scatter)."""
    tables_dir, plots_dir = Path(tables_dir), Path(plots_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    plots_dir.mkdir(parents=True, exist_ok=True)
    labels = list(pd.unique(result.probe["label"]))
    wide = result.probe.pivot(index="label", columns="encoder", values=["auroc", "auprc"]).reindex(labels)
    wide.columns = [f"{metric}_{encoder}" for metric, encoder in wide.columns]
    counts = result.probe.drop_duplicates("label").set_index("label")[["n_pos_train", "n_pos_test"]]
    counts.join(wide).reset_index().to_csv(tables_dir / "knn_probe.csv", index=False)
    result.coords.to_csv(plots_dir / "umap_coordinates.csv", index=False)


def draw_figures(result: LatentResult, out: StageOutputs, seed: int) -> dict[str, Path]:
    """The stage's figures: UMAP by diagnosis and site (points drawn in a ``seed``-shuffled order), and the
    per-label k-NN AUROC of both encoders. Returns {name: PNG path}."""
    return {
        "umap": latent_plots.plot_umap(result.coords, out.figure("umap"), subtitles=result.subtitles, seed=seed),
        "knn_probe_auroc": latent_plots.plot_probe_auroc(result.probe, out.figure("knn_probe_auroc")),
    }


def run(cfg: SimpleNamespace, root: Path | None = None) -> LatentResult:
    """The latent stage: embed, probe, project; write the tables, plot CSVs, figures and metrics JSON.

    Parameters
    ----------
    cfg : ``ecgstudy.config.stage_config("latent", params)``: ``seed``, ``data``, ``latent``.
    root : repository root (default :func:`ecgstudy.paths.repo_root`): outputs, and the curated store
        ``<data.curated>/<latent.store>``, resolve from it. The encoder is that of the pretraining run
        ``latent.encoder`` (:func:`ecgstudy.stages.artifacts.encoder_path`, under ``root``).
    """
    store_dir = artifacts.store_path(cfg.data.curated, cfg.latent.store, root)
    encoder = artifacts.encoder_path(cfg.latent.encoder, root)
    result = run_latent(cfg.latent, store_dir, encoder, seed=cfg.seed)  # inputs (twin included) checked first
    out = stage_outputs("latent", root, plots=True)
    write_tables(result, out.tables, out.plots)
    result.figures = draw_figures(result, out, cfg.seed)
    out.write_metrics(result.metrics)
    return result
