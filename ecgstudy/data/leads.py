"""The standard 12-lead order of every array the study stores, draws or explains.

``signals.npy`` in a curated store is (N, 12, T) in this order; readers reorder their sources' leads to it
(:func:`ecgstudy.data.preprocess.standardise_leads`), the simulator writes it, plots label panels with it.
"""

from __future__ import annotations

#: Lead names in storage order (limb leads, augmented limb leads, precordial leads).
LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
#: The same leads as WFDB headers of PTB-XL-style records spell them.
WFDB_NAMES: tuple[str, ...] = tuple(name.upper() if name.startswith("a") else name for name in LEADS)
