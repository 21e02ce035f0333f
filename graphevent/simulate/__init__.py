"""Simulated detector data: Pythia 8 quark/gluon jets rendered by a toy CMS-like detector.

:func:`generate_qg` writes jets in the layout of the public ML4SCI (HDF5) or E2E
(parquet) image files, plus the particle-level jets in the energyflow layout, so that
everything downstream runs exactly as on the real files. Event generation needs the
optional ``[sim]`` extra (``pythia8mc``, ``fastjet``); the detector emulation
(:func:`render_images`) needs only numpy. See ``docs/simulation.md``.
"""

from graphevent.simulate.detector import CHANNELS, DetectorConfig, ParticleBatch, render_images
from graphevent.simulate.qg import ENERGYFLOW_LABELS, ML4SCI_LABELS, generate_qg, particles_path, require_sim, sample_path

__all__ = [
    "CHANNELS",
    "ENERGYFLOW_LABELS",
    "ML4SCI_LABELS",
    "DetectorConfig",
    "ParticleBatch",
    "generate_qg",
    "particles_path",
    "render_images",
    "require_sim",
    "sample_path",
]
