"""Reading WFDB records (``.hea`` + ``.dat``) quickly and defensively.

The common layout of 12-lead datasets (PTB-XL, PhysioNet/CinC, MIMIC-IV-ECG: format 16, all signals
interleaved in one ``.dat`` file) is read with a small header parser and :func:`numpy.fromfile`, about
ten times faster than :func:`wfdb.rdrecord`; anything else falls back to :func:`wfdb.rdrecord`.
Either way a bad record raises :class:`~ecgstudy.data.sources.record.RecordReadError` with a reason:

- ``missing_file``: the header or signal file does not exist
- ``bad_header``: the header cannot be parsed
- ``truncated_data``: the signal file holds fewer samples than the header declares
- ``header_data_mismatch``: more samples than declared, or a size that is not whole frames
- ``checksum_mismatch``: a signal's 16-bit checksum differs from the header's (corrupt data)
- ``unreadable``: the wfdb package could not read the record
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgstudy.data.sources.record import RawSignal, RecordReadError

#: WFDB's default gain (ADC units per physical unit) when a header gives 0 or none.
DEFAULT_GAIN = 200.0
#: The format-16 value WFDB reserves for "no valid sample".
INVALID_16 = -32768

_SIGNAL_LINE = re.compile(
    r"^(?P<file>\S+)\s+(?P<fmt>\d+)(?:x(?P<spf>\d+))?(?::(?P<skew>\d+))?(?:\+(?P<offset>\d+))?"
    r"(?:\s+(?P<gain>[-+0-9.eE]+)(?:\((?P<baseline>-?\d+)\))?(?:/(?P<units>\S+))?"
    r"(?:\s+(?P<res>\d+)(?:\s+(?P<zero>-?\d+)(?:\s+(?P<init>-?\d+)(?:\s+(?P<checksum>-?\d+)"
    r"(?:\s+(?P<block>\d+)(?:\s+(?P<name>.*))?)?)?)?)?)?)?\s*$"
)


@dataclass(frozen=True)
class Header:
    """The parts of a single-segment WFDB header this package uses.

    ``sig_len`` is None when the header leaves it out; ``checksums`` entries are None when absent.
    """

    record_name: str
    fs: float
    sig_len: int | None
    files: tuple[str, ...]
    fmts: tuple[str, ...]
    simple: bool  # every signal fmt 16, one sample per frame, no skew or byte offset
    gains: tuple[float, ...]
    baselines: tuple[int, ...]
    units: tuple[str, ...]
    names: tuple[str, ...]
    checksums: tuple[int | None, ...]


def read_header(path: str | Path) -> Header:
    """Parse WFDB header ``path`` (``.hea``); raises RecordReadError (missing_file, bad_header)."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise RecordReadError("missing_file", f"header file not found: {path}") from None
    except OSError as exc:
        raise RecordReadError("missing_file", f"cannot read header {path}: {exc}") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise RecordReadError("bad_header", f"{path}: empty header")
    head = lines[0].split()
    try:
        if "/" in head[0]:
            raise RecordReadError("bad_header", f"{path}: multi-segment records are not supported")
        n_sig = int(head[1])
        fs = float(head[2].split("/")[0].split("(")[0]) if len(head) > 2 else 250.0
        sig_len = int(head[3]) if len(head) > 3 else None
    except (IndexError, ValueError):
        raise RecordReadError("bad_header", f"{path}: bad record line {lines[0]!r}") from None
    if n_sig < 1 or len(lines) < 1 + n_sig or fs <= 0:
        raise RecordReadError(
            "bad_header", f"{path}: declares {n_sig} signal(s) at {fs} Hz but has {len(lines) - 1} signal line(s)"
        )
    fields: dict[str, list] = {k: [] for k in ("files", "fmts", "gains", "baselines", "units", "names", "checksums")}
    simple = True
    for i, line in enumerate(lines[1 : 1 + n_sig]):
        m = _SIGNAL_LINE.match(line)
        if m is None:
            raise RecordReadError("bad_header", f"{path}: bad signal line {i + 1}: {line!r}")
        g = m.groupdict()
        plain_layout = g["spf"] in (None, "1") and g["skew"] in (None, "0") and g["offset"] in (None, "0")
        simple &= g["fmt"] == "16" and plain_layout
        gain = float(g["gain"]) if g["gain"] else 0.0
        zero = int(g["zero"]) if g["zero"] else 0
        fields["files"].append(g["file"])
        fields["fmts"].append(g["fmt"])
        fields["gains"].append(gain if gain != 0 else DEFAULT_GAIN)
        fields["baselines"].append(int(g["baseline"]) if g["baseline"] is not None else zero)
        fields["units"].append(g["units"] or "mV")
        fields["names"].append((g["name"] or f"signal{i}").strip())
        fields["checksums"].append(int(g["checksum"]) if g["checksum"] is not None else None)
    simple &= len(set(fields["files"])) == 1
    return Header(
        record_name=head[0],
        fs=fs,
        sig_len=sig_len,
        simple=simple,
        **{k: tuple(v) for k, v in fields.items()},
    )


def read_record(base: str | Path, verify_checksums: bool = True) -> RawSignal:
    """Read WFDB record ``base`` (path without ``.hea``) in physical units.

    Returns
    -------
    RawSignal
        ``data`` of shape (n_signals, n_samples), float64 in the header's units (NaN for WFDB's
        invalid-sample value), at the header's ``fs``.
    """
    base = Path(base)
    header = read_header(base.with_name(base.name + ".hea"))
    if header.simple:
        digital = _read_fmt16(base.parent / header.files[0], header, verify_checksums)
        gains = np.asarray(header.gains)[:, None]
        baselines = np.asarray(header.baselines, dtype=np.float64)[:, None]
        data = (digital - baselines) / gains
        data[digital == INVALID_16] = np.nan
    else:
        data = _read_with_wfdb(base, header)
    return RawSignal(data=data, fs=header.fs, leads=header.names, units=header.units)


def _read_fmt16(path: Path, header: Header, verify_checksums: bool) -> np.ndarray:
    """Digital samples of a single interleaved format-16 file: float64 (n_sig, n_samples)."""
    n_sig = len(header.names)
    try:
        raw = np.fromfile(path, dtype="<i2")
    except FileNotFoundError:
        raise RecordReadError("missing_file", f"signal file not found: {path}") from None
    except OSError as exc:
        raise RecordReadError("unreadable", f"cannot read {path}: {exc}") from None
    expected = None if header.sig_len is None else header.sig_len * n_sig
    if expected is not None and raw.size < expected:
        raise RecordReadError(
            "truncated_data", f"{path}: {raw.size} samples, header declares {header.sig_len} x {n_sig} = {expected}"
        )
    if (expected is not None and raw.size > expected) or raw.size % n_sig:
        raise RecordReadError(
            "header_data_mismatch",
            f"{path}: {raw.size} samples do not match {n_sig} signals x {header.sig_len} samples",
        )
    digital = raw.reshape(-1, n_sig).T
    if verify_checksums:
        check_checksums(digital, header, path)
    return digital.astype(np.float64)


def check_checksums(digital: np.ndarray, header: Header, path: Path) -> None:
    """Raise ``checksum_mismatch`` when a signal's 16-bit sum differs from its header checksum.

    ``digital``: integer ADC values of shape (n_sig, n_samples); signals without a checksum are skipped.
    """
    sums = digital.sum(axis=1, dtype=np.int64) & 0xFFFF
    for j, expected_sum in enumerate(header.checksums):
        if expected_sum is not None and sums[j] != (expected_sum & 0xFFFF):
            raise RecordReadError(
                "checksum_mismatch", f"{path}: signal {j} ({header.names[j]}) checksum differs from the header"
            )


def _read_with_wfdb(base: Path, header: Header) -> np.ndarray:
    """Fallback for uncommon layouts: wfdb.rdrecord, physical units, shape (n_sig, n_samples)."""
    import wfdb  # imported here: slow to import, only needed for uncommon formats

    for name in sorted(set(header.files)):
        if not (base.parent / name).is_file():
            raise RecordReadError("missing_file", f"signal file not found: {base.parent / name}")
    try:
        record = wfdb.rdrecord(str(base), physical=True, return_res=64)
    except Exception as exc:  # wfdb raises assorted exception types for damaged files
        raise RecordReadError("unreadable", f"{base}: wfdb could not read the record: {exc}") from None
    data = np.asarray(record.p_signal, dtype=np.float64).T
    if header.sig_len is not None and data.shape[1] != header.sig_len:
        raise RecordReadError(
            "header_data_mismatch", f"{base}: read {data.shape[1]} samples, header declares {header.sig_len}"
        )
    return data
