"""One raw record -> the model inputs a checkpoint expects, with the checkpoint's own preprocessing.

The checkpoint's ``preprocessing`` spec (what its training store went through: sampling rate, filters,
stored length, length policy, load-time normalisation) is applied to the record exactly as curation and
:class:`~ecgstudy.data.store.ECGDataset` applied it to the training records, so a record of the training
store's length gets the very numbers the model was evaluated on. Records of another length are handled by
the checkpoint's evaluation protocol (:class:`Protocol`):

- within ``length_tolerance_s`` of the stored length: cropped or padded as curation did (length policy);
- longer: every window of the model's input (the protocol's ``window``, or the stored length for whole-record
  models) at the protocol's stride, plus one window ending at the record's end when the last window leaves
  a tail; window probabilities are aggregated per record as the protocol says (max or mean);
- shorter by more than the tolerance than one input window: not predicted, status ``excluded`` (``too_short``).

Quality checks (:mod:`ecgstudy.data.quality`) run on the raw record; bad leads are masked (``flagged``)
unless fewer than ``min_leads`` remain (``excluded``, ``missing_leads``). Absent leads are masked as in
training (zeros plus a False lead mask), and each row says which leads were present.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecgstudy.data import preprocess, quality
from ecgstudy.data.sources import RawSignal, RecordReadError
from ecgstudy.data.store import window_starts
from ecgstudy.models.checkpoint import CheckpointError

#: Preprocessing-spec keys a checkpoint must carry for its model to be applied to raw records.
REQUIRED_SPEC = ("fs", "n_samples", "leads", "normalise")


@dataclass(frozen=True)
class Protocol:
    """How a checkpoint's model sees a record: sampling rate, stored length, input window, aggregation.

    ``window`` and ``stride`` are in samples at ``fs``; a whole-record model has ``window = n_samples``.
    """

    fs: float  # Hz
    n_samples: int  # the training store's record length (samples)
    window: int  # model input length (samples)
    stride: int  # step between window starts (samples)
    aggregate: str  # max | mean of window probabilities (embeddings: always the mean)
    whole_records: bool  # the checkpoint was evaluated on whole records (no sliding windows)

    def describe(self) -> str:
        if self.whole_records:
            return (f"whole {self.n_samples / self.fs:g} s records at {self.fs:g} Hz; longer records: "
                    f"{self.n_samples / self.fs:g} s windows, {self.aggregate} per record")
        return (f"{self.window / self.fs:g} s windows every {self.stride / self.fs:g} s at {self.fs:g} Hz, "
                f"{self.aggregate} of the window probabilities per record")


def check_spec(info: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's preprocessing spec; fails naming the checkpoint when a needed key is absent."""
    spec = info.get("preprocessing") or {}
    missing = [k for k in REQUIRED_SPEC if k not in spec]
    if missing:
        raise CheckpointError(f"{info.get('path')}: preprocessing spec lacks {missing}; cannot prepare raw records "
                              "for this model (retrain it with this version of ecgstudy)")
    if spec["normalise"] not in preprocess.NORMALISATIONS:
        raise CheckpointError(f"{info.get('path')}: unknown normalisation {spec['normalise']!r} in its spec")
    if spec["normalise"] in preprocess.DATASET_NORMALISATIONS and not spec.get("stats"):
        raise CheckpointError(f"{info.get('path')}: normalisation {spec['normalise']!r} needs the training split's "
                              "statistics, which its preprocessing spec lacks (stats); cannot prepare raw records")
    if list(spec["leads"]) != list(preprocess.STANDARD_LEADS):
        raise CheckpointError(f"{info.get('path')}: model leads {spec['leads']} are not the standard 12-lead order")
    return spec


def protocol_of(info: dict[str, Any], aggregate: str | None = None) -> Protocol:
    """The evaluation protocol stored with a checkpoint (``config`` keys ``eval_window_s``, ``eval_stride_s``,
    ``eval_aggregate`` of the stage that trained it; none: whole records, aggregated by max)."""
    spec = check_spec(info)
    fs, n = float(spec["fs"]), int(spec["n_samples"])
    cfg = info.get("config") or {}
    how = aggregate or cfg.get("eval_aggregate") or "max"
    if how not in ("max", "mean"):
        raise ValueError(f"aggregate must be max or mean, got {how!r}")
    if cfg.get("eval_window_s") is None:
        return Protocol(fs, n, n, n, how, True)
    window = int(round(cfg["eval_window_s"] * fs))
    stride = int(round(cfg.get("eval_stride_s", cfg["eval_window_s"]) * fs))
    if not 1 <= window <= n or stride < 1:
        raise CheckpointError(f"{info.get('path')}: evaluation window {window} / stride {stride} samples do not fit "
                              f"its {n}-sample records")
    return Protocol(fs, n, window, stride, how, False)


@dataclass(frozen=True)
class ApplyOptions:
    """Record handling of ``predict`` / ``embed`` (CLI options)."""

    min_leads: int = 1  # leads that must be present (after masking bad ones)
    lead_aliases: dict[str, str] = field(default_factory=dict)  # declared aliases, e.g. {MLII: II}
    length_tolerance_s: float = 1.0  # records this close to the stored length are cropped/padded like curation
    qc: quality.QCConfig = field(default_factory=lambda: quality.QCConfig(bad_lead_policy="mask", min_leads=1))

    def validate(self) -> None:
        preprocess.check_aliases(self.lead_aliases)
        if not 1 <= self.min_leads <= len(preprocess.STANDARD_LEADS):
            raise ValueError(f"min_leads must be in 1..12, got {self.min_leads}")
        if self.length_tolerance_s < 0:
            raise ValueError(f"length_tolerance_s must be >= 0, got {self.length_tolerance_s}")


@dataclass
class Prepared:
    """One record ready for a model: ``windows`` float32 (W, 12, window) normalised, ``mask`` bool (12,).

    ``status`` is ``ok``, ``flagged`` (bad leads masked, or resampled up) or ``excluded`` (``windows`` None;
    ``reason``/``detail`` say why).
    """

    position: int
    windows: np.ndarray | None = None
    mask: np.ndarray | None = None
    status: str = "ok"
    reason: str = ""
    detail: str = ""
    fs: float = float("nan")  # the record's own rate (Hz)
    duration_s: float = float("nan")

    @property
    def leads_present(self) -> str:
        if self.mask is None:
            return ""
        return ",".join(name for name, on in zip(preprocess.STANDARD_LEADS, self.mask) if on)

    def exclude(self, reason: str, detail: str) -> Prepared:
        self.status, self.reason, self.detail, self.windows = "excluded", reason, detail, None
        return self


def record_starts(length: int, protocol: Protocol) -> np.ndarray:
    """Window starts (int64) over a prepared record of ``length`` samples (see the module docstring)."""
    if length == protocol.n_samples:  # the training store's length: exactly the evaluation's windows
        return window_starts(length, protocol.window, protocol.stride)
    starts = window_starts(length, protocol.window, protocol.stride)
    if starts[-1] + protocol.window < length:  # cover the tail of a long record
        starts = np.r_[starts, length - protocol.window]
    return starts


def fit_record(signal: np.ndarray, protocol: Protocol, spec: dict[str, Any], tolerance_s: float) -> np.ndarray | None:
    """Signal (12, L) at the model's rate -> (12, L') to window; None when too short (see the module docstring)."""
    length, n, tol = signal.shape[1], protocol.n_samples, int(round(tolerance_s * protocol.fs))
    policy = spec.get("length_policy") or "center_crop_or_pad"
    policy = "start_crop_or_pad" if policy == "windows" else policy
    if abs(length - n) <= tol:
        return preprocess.fit_length(signal, n, policy)[0]
    if length > n or length >= protocol.window:
        return signal
    if length >= protocol.window - tol:
        return preprocess.fit_length(signal, protocol.window, policy)[0]
    return None


def prepare(raw: RawSignal, position: int, spec: dict[str, Any], protocol: Protocol, options: ApplyOptions) -> Prepared:
    """Raw record -> :class:`Prepared` (never raises for bad data: the reason goes into the result)."""
    out = Prepared(position, fs=float(raw.fs), duration_s=float(raw.duration_s))
    try:
        if not raw.fs > 0:
            return out.exclude("bad_sampling_rate", f"sampling rate {raw.fs!r} Hz")
        data = preprocess.to_millivolts(raw.data, raw.units)
        data, mask = preprocess.to_standard_leads(data, raw.leads, options.lead_aliases)
    except ValueError as exc:
        return out.exclude("bad_leads_or_units", str(exc))
    out.mask = mask
    if not mask.any():
        return out.exclude("missing_leads", f"no 12-lead name among {list(raw.leads)} (declare aliases, e.g. MLII=II)")
    qc_cfg = dataclasses.replace(options.qc, duration_tolerance_s=None, min_leads=options.min_leads)
    qc = quality.check(data, mask, raw.fs, protocol.n_samples / protocol.fs, qc_cfg)
    out.mask = qc.mask
    if qc.excluded:
        return out.exclude(qc.reason, qc.detail)
    notes = [detail for _, detail in qc.flags]
    if raw.fs < protocol.fs:
        notes.append(f"upsampled from {raw.fs:g} Hz to {protocol.fs:g} Hz")
    data[~qc.mask] = np.nan
    try:
        signal = preprocess.filter_and_resample(
            data, raw.fs, protocol.fs, bandpass_hz=tuple(spec["bandpass"]) if spec.get("bandpass") else None,
            notch_hz=spec.get("notch"), baseline_median_s=spec.get("baseline_median_s"),
        )
    except Exception as exc:  # a record that breaks the filters is reported, not a crash halfway
        return out.exclude("processing_error", f"{type(exc).__name__}: {exc}")
    signal = fit_record(signal.astype(np.float32), protocol, spec, options.length_tolerance_s)
    if signal is None:
        need = protocol.window / protocol.fs - options.length_tolerance_s
        return out.exclude("too_short", f"{raw.duration_s:.3f} s; the model needs at least {need:g} s")
    starts = record_starts(signal.shape[1], protocol)
    out.windows = np.stack([preprocess.normalise(signal[:, s : s + protocol.window], spec["normalise"], qc.mask,
                                                 spec.get("stats")) for s in starts])
    if notes:
        out.status, out.detail = "flagged", "; ".join(notes)
    return out


def read_and_prepare(source, position: int, spec: dict[str, Any], protocol: Protocol, options: ApplyOptions) -> Prepared:
    """Read catalog row ``position`` of ``source`` and :func:`prepare` it; a read failure becomes ``excluded``."""
    try:
        raw = source.read_signal(position)
    except RecordReadError as exc:
        return Prepared(position).exclude(exc.reason, exc.detail)
    return prepare(raw, position, spec, protocol, options)
