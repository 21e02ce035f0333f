"""Simulated detector data: Pythia 8 jets and whole events rendered by a toy CMS-like detector.

:func:`generate_qg` writes jets in the layout of the public ML4SCI (HDF5) or E2E
(parquet) image files, plus the particle-level jets in the energyflow layout, so that
everything downstream runs exactly as on the real files. :func:`generate_events` writes
whole events of three processes (H -> gamma gamma, prompt diphoton, gamma + jet) as
170 x 360 whole-barrel images (:mod:`graphevent.simulate.barrel`) in the same layouts.
Event generation needs the optional ``[sim]`` extra (``pythia8mc``, ``fastjet``); the
detector emulation (:func:`render_images`, :func:`render_event_images`) needs only numpy.
See ``docs/simulation.md``.
"""

from graphevent.simulate.barrel import BarrelGrid, render_event_images
from graphevent.simulate.detector import CHANNELS, DetectorConfig, ParticleBatch, render_images
from graphevent.simulate.events import EventSettings, generate_events
from graphevent.simulate.qg import ENERGYFLOW_LABELS, ML4SCI_LABELS, generate_qg, particles_path, require_sim, sample_path

__all__ = [
    "BarrelGrid",
    "CHANNELS",
    "EventSettings",
    "ENERGYFLOW_LABELS",
    "ML4SCI_LABELS",
    "DetectorConfig",
    "ParticleBatch",
    "generate_events",
    "generate_qg",
    "particles_path",
    "render_event_images",
    "render_images",
    "require_sim",
    "sample_path",
]
