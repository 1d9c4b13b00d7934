"""Wave components of the cardiac dipole: lobes and plateaus, and their rendering to a sampled signal.

Every wave (P, QRS, ST, T, pacing spike) is a sum of components, each a shape in time times a
9-channel amplitude: the first three channels are the dipole (X, Y, Z in the Frank frame, mV; projected
to the leads by :mod:`ecgstudy.simulate.leads`), the last six are non-dipolar potentials added directly to
V1-V6 (mV), for signatures that are local to the right-ventricular outflow tract or free wall (Brugada
pattern, epsilon waves) and that a single dipole cannot produce.

Two shapes:

- a *lobe*, an asymmetric Gaussian ``exp(-(t - c)^2 / (2 s^2))`` with ``s = sl`` before the centre and
  ``s = sr`` after it; its onset and offset are taken at ``EXTENT`` sigmas (4.4 % of the peak), which is
  how the ground-truth intervals (PR, QRS, QT) are defined;
- a *plateau*, a smooth box ``expit((t - c) / sl) * expit((c + width - t) / sr)``, used for ST-segment
  deviation that starts at the J point and merges into the T wave.

Times are in seconds, relative to whatever origin the caller uses (a beat's QRS onset, or the record).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PART_P, PART_QRS, PART_ST, PART_T, PART_SPIKE, PART_ATRIAL = 0, 1, 2, 3, 4, 5
N_CHANNELS = 9  # 3 dipole channels (X, Y, Z) + 6 local precordial channels (V1..V6)
EXTENT = 2.5  # sigmas from a lobe's centre to its onset/offset (exp(-2.5**2 / 2) = 4.4 % of the peak)
_RENDER_SIGMAS = 4.5  # a lobe is evaluated over +-4.5 sigmas (3e-5 of its peak beyond)
_RENDER_TAUS = 9.0  # a plateau edge is evaluated over 9 time constants (1e-4 beyond)
_FIELDS = ("t", "sl", "sr", "width", "amp", "part", "plateau")


@dataclass
class Waves:
    """A set of wave components (lobes and plateaus), K of them.

    Attributes
    ----------
    t : (K,) centre of a lobe / start of a plateau, s.
    sl, sr : (K,) left and right sigma of a lobe / rise and fall time constant of a plateau, s.
    width : (K,) plateau length, s (0 for lobes).
    amp : (K, 9) amplitude: dipole X, Y, Z then local V1..V6, mV.
    part : (K,) int, which wave the component belongs to (``PART_*``).
    plateau : (K,) bool, True for plateaus.
    """

    t: np.ndarray
    sl: np.ndarray
    sr: np.ndarray
    width: np.ndarray
    amp: np.ndarray
    part: np.ndarray
    plateau: np.ndarray

    @classmethod
    def empty(cls) -> Waves:
        z = np.zeros(0)
        return cls(z, z, z, z, np.zeros((0, N_CHANNELS)), np.zeros(0, int), np.zeros(0, bool))

    @classmethod
    def lobes(cls, t, sl, sr, vectors, part: int, local=None) -> Waves:
        """Lobes from centres ``t``, sigmas ``sl``/``sr`` (s) and dipole ``vectors`` (K, 3) in mV.

        ``local`` (K, 6), optional: non-dipolar amplitudes on V1..V6 (mV).
        """
        t = np.atleast_1d(np.asarray(t, float))
        k = t.size
        amp = np.zeros((k, N_CHANNELS))
        if vectors is not None:
            amp[:, :3] = np.asarray(vectors, float).reshape(k, 3)
        if local is not None:
            amp[:, 3:] = np.asarray(local, float).reshape(k, 6)
        return cls(
            t,
            np.broadcast_to(np.asarray(sl, float), (k,)).copy(),
            np.broadcast_to(np.asarray(sr, float), (k,)).copy(),
            np.zeros(k),
            amp,
            np.full(k, part, int),
            np.zeros(k, bool),
        )

    @classmethod
    def plateau_(cls, start: float, end: float, rise: float, fall: float, vector, part: int, local=None) -> Waves:
        """One plateau from ``start`` to ``end`` (s) with edge time constants ``rise``/``fall`` (s)."""
        amp = np.zeros((1, N_CHANNELS))
        if vector is not None:
            amp[0, :3] = vector
        if local is not None:
            amp[0, 3:] = local
        return cls(
            np.array([start], float),
            np.array([rise], float),
            np.array([fall], float),
            np.array([max(end - start, 0.0)]),
            amp,
            np.array([part]),
            np.array([True]),
        )

    def __len__(self) -> int:
        return int(self.t.size)

    @staticmethod
    def concat(items: list[Waves]) -> Waves:
        items = [w for w in items if len(w)]
        if not items:
            return Waves.empty()
        return Waves(*(np.concatenate([getattr(w, f) for w in items]) for f in _FIELDS))

    def copy(self) -> Waves:
        return Waves(*(getattr(self, f).copy() for f in _FIELDS))

    def select(self, keep: np.ndarray) -> Waves:
        return Waves(*(getattr(self, f)[keep] for f in _FIELDS))

    def of(self, *parts: int) -> Waves:
        """The components belonging to the given parts."""
        return self.select(self._in(parts))

    def shifted(self, dt: float) -> Waves:
        out = self.copy()
        out.t = out.t + dt
        return out

    def _in(self, parts: tuple[int, ...]) -> np.ndarray:
        if len(parts) == 1:
            return self.part == parts[0]
        return np.isin(self.part, parts)

    def onset_offset(self, *parts: int, min_amp: float = 0.0) -> tuple[float, float]:
        """Earliest onset and latest offset (s) of the components of ``parts`` (EXTENT sigmas).

        Components whose peak amplitude (largest channel magnitude) is below ``min_amp`` mV are ignored.
        Returns (nan, nan) when there is none.
        """
        sel = self._in(parts)
        if min_amp > 0.0 and len(self):
            sel &= np.abs(self.amp).max(axis=1) > min_amp
        if not sel.any():
            return float("nan"), float("nan")
        t, sl, sr, w = self.t[sel], self.sl[sel], self.sr[sel], self.width[sel]
        return float(np.min(t - EXTENT * sl)), float(np.max(t + w + EXTENT * sr))

    def area(self, *parts: int) -> np.ndarray:
        """Time integral (mV s) of the components of ``parts``, per channel: shape (9,)."""
        sel = self._in(parts)
        lobe = sel & ~self.plateau
        plat = sel & self.plateau
        lobe_area = np.sqrt(np.pi / 2.0) * (self.sl[lobe] + self.sr[lobe])
        plat_area = self.width[plat]  # the smooth edges add and remove about equal area
        return lobe_area @ self.amp[lobe] + plat_area @ self.amp[plat]

    def transform_dipole(self, matrix: np.ndarray, parts: tuple[int, ...] | None = None) -> None:
        """Apply a 3x3 ``matrix`` (rotation and/or scaling) to the dipole amplitudes, in place."""
        sel = slice(None) if parts is None else np.isin(self.part, parts)
        self.amp[sel, :3] = self.amp[sel, :3] @ matrix.T


def render(waves: Waves, t_start: float, fs: float, n: int) -> np.ndarray:
    """Sample the summed components on the grid ``t_start + i / fs``, i = 0..n-1.

    Returns
    -------
    array of shape (9, n): dipole X, Y, Z then local V1..V6, in mV.
    """
    out = np.zeros((N_CHANNELS, n))
    if not len(waves):
        return out
    lobes = ~waves.plateau
    if lobes.any():
        _render_lobes(out, waves.select(lobes), t_start, fs)
    for k in np.flatnonzero(waves.plateau):
        c, rise, fall, width = waves.t[k], waves.sl[k], waves.sr[k], waves.width[k]
        i0 = max(int(np.ceil((c - _RENDER_TAUS * rise - t_start) * fs)), 0)
        i1 = min(int(np.floor((c + width + _RENDER_TAUS * fall - t_start) * fs)) + 1, n)
        if i1 <= i0:
            continue
        tt = t_start + np.arange(i0, i1) / fs
        shape = _expit((tt - c) / rise) * _expit((c + width - tt) / fall)
        amp = waves.amp[k]
        nz = np.flatnonzero(amp)
        out[nz, i0:i1] += amp[nz, None] * shape
    return out


def _render_lobes(out: np.ndarray, lobes: Waves, t_start: float, fs: float) -> None:
    """Add all lobes at once: each evaluated on its own window, windows padded to a common length."""
    n = out.shape[1]
    first = np.ceil((lobes.t - _RENDER_SIGMAS * lobes.sl - t_start) * fs).astype(np.int64)
    last = np.floor((lobes.t + _RENDER_SIGMAS * lobes.sr - t_start) * fs).astype(np.int64)
    keep = (last >= 0) & (first < n) & (last >= first)
    if not keep.any():
        return
    first, last = first[keep], last[keep]
    t, sl, sr, amp = lobes.t[keep], lobes.sl[keep], lobes.sr[keep], lobes.amp[keep]
    width = int((last - first).max()) + 1
    idx = first[:, None] + np.arange(width)[None, :]  # (K, W) sample indices
    valid = (idx <= last[:, None]) & (idx >= 0) & (idx < n)
    d = t_start + idx / fs - t[:, None]
    shape = np.exp(-0.5 * (d / np.where(d < 0, sl[:, None], sr[:, None])) ** 2)
    shape[~valid] = 0.0
    flat_idx = np.clip(idx, 0, n - 1).ravel()
    for ch in np.flatnonzero(np.any(amp != 0.0, axis=0)):
        out[ch] += np.bincount(flat_idx, weights=(shape * amp[:, ch, None]).ravel(), minlength=n)


def _expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def rotate_to(vector: np.ndarray, target: np.ndarray, fraction: float = 1.0) -> np.ndarray:
    """Rotate ``vector`` toward the direction of ``target`` by ``fraction`` of the angle between them.

    Keeps the length of ``vector``. Used to bend a lobe's direction (e.g. an infarct pulling forces away
    from its territory) without changing its magnitude.
    """
    a = np.asarray(vector, float)
    b = np.asarray(target, float)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return a.copy()
    ua, ub = a / na, b / nb
    angle = np.arccos(np.clip(ua @ ub, -1.0, 1.0))
    if angle < 1e-9:
        return a.copy()
    perp = ub - (ua @ ub) * ua
    if np.linalg.norm(perp) < 1e-9:  # opposite directions: any perpendicular will do
        perp = np.cross(ua, [1.0, 0.0, 0.0] if abs(ua[0]) < 0.9 else [0.0, 1.0, 0.0])
    perp /= np.linalg.norm(perp)
    phi = fraction * angle
    return na * (np.cos(phi) * ua + np.sin(phi) * perp)


def unit(vector) -> np.ndarray:
    """``vector`` scaled to length 1 (zeros stay zeros)."""
    v = np.asarray(vector, float)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v
