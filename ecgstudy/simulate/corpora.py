"""The corpora of the simulated world: who pretrains, who fine-tunes, who validates externally.

The seed papers pretrain on one very large health system and adapt to small datasets elsewhere, so the
simulator writes several corpora, each its own PTB-XL-format dataset under ``<raw>/<corpus>/``:

- ``foundation`` (role ``foundation``): the pretraining health system, the largest corpus, its own
  hospitals and devices, labelled with the full study vocabulary (supervised pretraining as ECGFounder
  and the UCSF model did);
- ``downstream`` (role ``downstream``): a PTB-XL-like dataset (size, ``strat_fold``, label conventions)
  at other sites: what fine-tuning, probing and testing read;
- ``external`` (role ``external``): a separate hospital abroad with a documented domain shift (its own
  devices, mains frequency, electrode practice and population);
- the rare-disease case-control sets, drawn from the downstream clinics (``<raw>/rare/``).

A corpus names its sites (:class:`~ecgstudy.simulate.devices.SiteConfig`); its size is in
``simulate.sizes`` (params.yaml ``study.corpus_sizes``), so a profile can resize the world without
restating the sites. Patient ids and record ids are disjoint between corpora by construction (each
corpus's ids follow the previous corpus's), and :func:`check_disjoint` verifies it on the written tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ecgstudy.simulate.devices import SiteConfig

#: Corpus roles. Only a ``foundation`` corpus may be pretrained on.
ROLES: tuple[str, ...] = ("foundation", "downstream", "external")


@dataclass(frozen=True)
class CorpusSize:
    """How many patients and records a corpus has (params.yaml ``study.corpus_sizes.<corpus>``)."""

    patients: int = 100  # distinct patients
    records: int = 120  # records (>= patients; the extras are follow-ups of some patients)


@dataclass(frozen=True)
class CorpusConfig:
    """One simulated corpus: its role and its sites (a params.yaml ``simulate.corpora`` entry)."""

    name: str = "downstream"  # folder under <data.curated>/raw/ (foundation, downstream, external)
    role: Literal["foundation", "downstream", "external"] = "downstream"  # what the study may do with it
    sites: tuple[SiteConfig, ...] = field(default_factory=lambda: (SiteConfig(),))  # hospitals/devices (>= 1)
    max_records_per_patient: int = 5  # cap on follow-up records of one patient

    def validate(self) -> None:
        """Check the corpus itself; raises ValueError naming the corpus and the problem."""
        where = f"corpus {self.name!r}"
        if not self.name or "/" in self.name or self.name == "rare":
            raise ValueError(f"{where}: the name must be a folder name other than 'rare'")
        if not self.sites:
            raise ValueError(f"{where}: at least one site is needed")
        names = [s.name for s in self.sites]
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: site names must be unique, got {names}")
        if self.max_records_per_patient < 1:
            raise ValueError(f"{where}: max_records_per_patient must be >= 1")
        for site in self.sites:
            site.validate()

    def check_size(self, size: CorpusSize) -> None:
        """The corpus can have ``size``; raises ValueError naming the corpus and what cannot be met."""
        where = f"corpus {self.name!r} (study.corpus_sizes.{self.name})"
        if size.patients < 1 or size.records < size.patients:
            raise ValueError(f"{where}: need 1 <= patients <= records, got {size.patients} and {size.records}")
        if size.records > size.patients * self.max_records_per_patient:
            raise ValueError(
                f"{where}: {size.records} records cannot be met by {size.patients} patients with at most "
                f"max_records_per_patient = {self.max_records_per_patient} records each"
            )


def check_world(corpora: Sequence[CorpusConfig], sizes: dict[str, CorpusSize]) -> None:
    """The corpora form a world the study can use; raises ValueError naming the corpus or key.

    Exactly one ``foundation`` and one ``downstream`` corpus, any number of ``external`` ones; unique
    corpus names and site names across the world; ``sizes`` has exactly one entry per corpus.
    """
    names = [c.name for c in corpora]
    if len(set(names)) != len(names):
        raise ValueError(f"corpus names must be unique, got {names}")
    for role in ("foundation", "downstream"):
        n = sum(c.role == role for c in corpora)
        if n != 1:
            raise ValueError(f"the world needs exactly one {role!r} corpus, got {n} (corpora: {names})")
    missing, extra = sorted(set(names) - set(sizes)), sorted(set(sizes) - set(names))
    if missing or extra:
        raise ValueError(f"sizes (study.corpus_sizes) must name every corpus once: missing {missing}, "
                         f"unknown {extra} (corpora: {names})")
    sites = [s.name for c in corpora for s in c.sites]
    dup = sorted({s for s in sites if sites.count(s) > 1})
    if dup:
        raise ValueError(f"site names must be unique across corpora (a hospital belongs to one corpus); repeated: {dup}")
    for corpus in corpora:
        corpus.validate()
        corpus.check_size(sizes[corpus.name])


def corpus_of_role(corpora: Sequence[CorpusConfig], role: str) -> CorpusConfig:
    """The (first) corpus with ``role``."""
    for corpus in corpora:
        if corpus.role == role:
            return corpus
    raise KeyError(f"no corpus with role {role!r}; corpora: {[(c.name, c.role) for c in corpora]}")


def default_sizes() -> dict[str, CorpusSize]:
    """Default sizes: fit the 40-minute study on 2 CPU cores (README, "Corpora")."""
    return {
        "foundation": CorpusSize(patients=6000, records=8000),
        "downstream": CorpusSize(patients=2400, records=3000),
        "external": CorpusSize(patients=500, records=600),
    }


def default_corpora() -> tuple[CorpusConfig, ...]:
    """The seed papers' world: a three-hospital pretraining system, two downstream clinics, one hospital abroad.

    Bandwidths: 0.05-150 Hz is the AHA diagnostic recommendation, 0.5-40 Hz a monitoring/"filtered" setting
    that distorts ST segments and QRS amplitude (Kligfield 2007). Electrode placement: precordial
    electrodes are routinely misplaced by one intercostal space or several cm (Kligfield 2007; Rajaganeshan
    2008), modelled as the sd of each precordial lead vector (a site's practice). Population: age, sex and
    case mix per site. Every number is in ``simulate/SOURCES.md`` ("Corpora and sites").
    """
    foundation = CorpusConfig(
        name="foundation", role="foundation", max_records_per_patient=5,
        sites=(
            SiteConfig(
                name="fdn_tertiary", device="SIM-F500", weight=0.5, native_fs=500, highpass_hz=0.05,
                lowpass_hz=150.0, mains_hz=60.0, mains_uv=8.0, emg_uv=7.0, wander_mv=0.08, motion_prob=0.03,
                lead_off_prob=0.005, gain=1.0, lsb_uv=2, placement_sd=0.10, age_mean=63.0, age_sd=16.0,
                female_frac=0.46, prevalence={"IMI": 1.2, "ASMI": 1.2, "CLBBB": 1.2, "PACE": 1.2},
            ),
            SiteConfig(
                name="fdn_cardiology", device="SIM-F1000", weight=0.3, native_fs=1000, highpass_hz=0.05,
                lowpass_hz=150.0, mains_hz=60.0, mains_uv=6.0, emg_uv=6.0, wander_mv=0.07, motion_prob=0.02,
                lead_off_prob=0.005, gain=1.0, lsb_uv=2, placement_sd=0.08, age_mean=66.0, age_sd=13.0,
                female_frac=0.40, prevalence={"AFIB": 1.3, "AFLT": 1.3, "LVH": 1.2, "1AVB": 1.2},
            ),
            SiteConfig(
                name="fdn_emergency", device="SIM-F500E", weight=0.2, native_fs=500, highpass_hz=0.5,
                lowpass_hz=150.0, mains_hz=60.0, mains_uv=15.0, emg_uv=14.0, wander_mv=0.18, motion_prob=0.10,
                lead_off_prob=0.02, gain=1.0, lsb_uv=2, placement_sd=0.15, age_mean=55.0, age_sd=19.0,
                female_frac=0.50, prevalence={"STACH": 1.6, "ISC_": 1.3, "AMI": 1.4},
            ),
        ),
    )
    downstream = CorpusConfig(
        name="downstream", role="downstream", max_records_per_patient=5,
        sites=(
            SiteConfig(
                name="university", device="SIM-500", weight=0.55, native_fs=500, highpass_hz=0.05,
                lowpass_hz=150.0, mains_hz=50.0, mains_uv=8.0, emg_uv=6.0, wander_mv=0.08, motion_prob=0.03,
                lead_off_prob=0.005, gain=1.0, lsb_uv=2, placement_sd=0.10, age_mean=62.0, age_sd=17.0,
                female_frac=0.48,
            ),
            SiteConfig(
                name="community", device="SIM-250F", weight=0.45, native_fs=250, highpass_hz=0.5, lowpass_hz=40.0,
                notch=True, mains_hz=50.0, mains_uv=25.0, emg_uv=14.0, wander_mv=0.2, motion_prob=0.08,
                lead_off_prob=0.015, gain=0.97, lsb_uv=4, placement_sd=0.12, age_mean=67.0, age_sd=14.0,
                female_frac=0.55,
                prevalence={"AFIB": 1.4, "AFLT": 1.3, "LVH": 1.3, "PACE": 1.4, "1AVB": 1.2, "IMI": 0.8, "ASMI": 0.8},
            ),
        ),
    )
    external = CorpusConfig(
        name="external", role="external", max_records_per_patient=3,
        sites=(
            SiteConfig(
                name="abroad", device="SIM-1000X", weight=1.0, native_fs=1000, highpass_hz=0.5,
                lowpass_hz=100.0, mains_hz=60.0, mains_uv=15.0, emg_uv=11.0, wander_mv=0.12, motion_prob=0.05,
                lead_off_prob=0.01, gain=1.04, lsb_uv=2, placement_sd=0.18, age_mean=57.0, age_sd=16.0,
                female_frac=0.42,
                prevalence={"IMI": 1.5, "ASMI": 1.5, "AMI": 1.8, "ISC_": 1.5, "CLBBB": 1.3, "WPW": 1.5, "AFIB": 0.7},
            ),
        ),
    )
    return foundation, downstream, external


def scaled_sizes(sizes: dict[str, CorpusSize], factor: float) -> dict[str, CorpusSize]:
    """Every corpus's size times ``factor`` (at least one patient and one record each), ratios kept."""
    out = {}
    for name, size in sizes.items():
        patients = max(1, round(size.patients * factor))
        out[name] = CorpusSize(patients=patients, records=max(patients, round(size.records * factor)))
    return out
