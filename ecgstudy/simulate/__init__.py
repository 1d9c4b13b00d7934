"""A physiologically simulated 12-lead ECG cohort in PTB-XL format.

The cardiac dipole (vectorcardiogram) is built from P, QRS and T wave components, changed by the
conditions each record has (PTB-XL SCP codes, plus rare codes outside PTB-XL), projected to the 12 leads
through the Dower transfer matrix, recorded by site-specific devices with noise, and written as WFDB
records with PTB-XL's tables and the ground truth. See ``SOURCES.md`` beside this file for the source of
every physiological range.

Public API: :class:`SimulateConfig` (the params.yaml ``simulate`` section: the corpora of
:mod:`ecgstudy.simulate.corpora`), :func:`write_world` (every corpus and the rare sets on disk; also
``write_cohort``) and :func:`simulate_record` (one record in memory).
"""

from ecgstudy.simulate.annotate import AnnotatorConfig
from ecgstudy.simulate.cohort import RareConfig, SimulateConfig, write_cohort, write_world
from ecgstudy.simulate.corpora import ROLES, CorpusConfig, CorpusSize
from ecgstudy.simulate.devices import SiteConfig, default_sites
from ecgstudy.simulate.physiology import Patient, sample_patient
from ecgstudy.simulate.record import SimulatedRecord, simulate_record

__all__ = [
    "AnnotatorConfig",
    "CorpusConfig",
    "CorpusSize",
    "ROLES",
    "Patient",
    "RareConfig",
    "SimulateConfig",
    "SimulatedRecord",
    "SiteConfig",
    "default_sites",
    "sample_patient",
    "simulate_record",
    "write_cohort",
    "write_world",
]
