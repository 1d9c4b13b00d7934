"""A physiologically simulated 12-lead ECG cohort in PTB-XL format.

The cardiac dipole (vectorcardiogram) is built from P, QRS and T wave components, changed by the
conditions each record has (PTB-XL SCP codes, plus rare codes outside PTB-XL), projected to the 12 leads
through the Dower transfer matrix, recorded by site-specific devices with noise, and written as WFDB
records with PTB-XL's tables and the ground truth. See ``SOURCES.md`` beside this file for the source of
every physiological range.

Public API: :class:`SimulateConfig` (the params.yaml ``simulate`` section), :func:`write_cohort`
(the whole cohort on disk) and :func:`simulate_record` (one record in memory).
"""

from ecgstudy.simulate.annotate import AnnotatorConfig
from ecgstudy.simulate.cohort import RareConfig, SimulateConfig, write_cohort
from ecgstudy.simulate.devices import SiteConfig, default_sites
from ecgstudy.simulate.physiology import Patient, sample_patient
from ecgstudy.simulate.record import SimulatedRecord, simulate_record

__all__ = [
    "AnnotatorConfig",
    "Patient",
    "RareConfig",
    "SimulateConfig",
    "SimulatedRecord",
    "SiteConfig",
    "default_sites",
    "sample_patient",
    "simulate_record",
    "write_cohort",
]
