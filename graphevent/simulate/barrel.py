"""The toy detector's whole barrel: one image per event, in absolute (eta, phi).

A jet image (:func:`graphevent.simulate.detector.render_images`) is a window centred on a
jet; a whole-event image covers the full barrel at crystal granularity, as in the CMS
end-to-end event studies (Andrews et al., arXiv:1807.11916): ``n_eta x n_phi`` pixels,
CMS ECAL barrel 170 x 360, ``|eta| < eta_max = 1.479`` and the full ``2 pi`` in phi.

Pixel ``(i, j)`` covers ``eta`` in ``[-eta_max + i d_eta, -eta_max + (i + 1) d_eta)`` and
``phi`` in ``[-pi + j d_phi, -pi + (j + 1) d_phi)``, with ``d_eta = 2 eta_max / n_eta``
(0.0174) and ``d_phi = 2 pi / n_phi`` (0.01745). The image centre is therefore
``(eta, phi) = (0, 0)``: the positions ``graphevent preprocess`` computes, centred on the
image, are the detector's absolute (eta, phi). Phi is periodic: column ``n_phi - 1`` and
column 0 are neighbours, and an ECAL shower that spreads over the seam wraps around it.

Particles, resolutions, noise and thresholds are those of the jet images
(:class:`~graphevent.simulate.detector.DetectorConfig`, the same draws from the same
:func:`~graphevent.simulate.detector.particle_deposits`); only the cells differ. HCAL
towers are ``hcal_tower x hcal_tower`` crystals (34 x 72 towers of 0.087 x 0.087 by
default), upsampled to the crystal grid as in the jet images (each pixel holds tower
energy / 25). ``DetectorConfig.image_size`` and ``pixel_size`` are not used here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from graphevent.errors import ConfigError
from graphevent.simulate.detector import DetectorConfig, ParticleBatch, bend_phi, hcal_towers, particle_deposits, smear


@dataclass(frozen=True)
class BarrelGrid:
    """Cells of a whole-event image.

    Args:
        n_eta: crystals along eta (image rows; CMS ECAL barrel: 170).
        n_phi: crystals around phi (image columns, the full 2 pi; CMS: 360).
        eta_max: the barrel's edge in |eta| (CMS: 1.479).
    """

    n_eta: int = 170
    n_phi: int = 360
    eta_max: float = 1.479

    @property
    def pixel_eta(self) -> float:
        """Eta size of one crystal (0.0174 for CMS)."""
        return 2.0 * self.eta_max / self.n_eta

    @property
    def pixel_phi(self) -> float:
        """Phi size of one crystal (2 pi / 360 = 0.01745 for CMS)."""
        return 2.0 * math.pi / self.n_phi

    def validate(self, tower: int, where: str = "grid") -> None:
        if self.eta_max <= 0:
            raise ConfigError(f"{where}.eta_max: invalid value {self.eta_max}; expected > 0")
        for name in ("n_eta", "n_phi"):
            value = getattr(self, name)
            if value < 1 or value % tower:
                raise ConfigError(f"{where}.{name}: invalid value {value}; expected a positive multiple of hcal_tower={tower}")


def render_event_images(
    particles: ParticleBatch, n_events: int, cfg: DetectorConfig, grid: BarrelGrid, rng: np.random.Generator
) -> np.ndarray:
    """Render the particles of ``n`` events as whole-barrel images.

    Args:
        particles: all final-state particles of the events (event index 0..n-1).
        n_events: ``n`` (an event may have no particle).
        cfg: detector physics (resolutions, noise, thresholds, field, radii).
        grid: the image's cells.
        rng: random generator for smearing, shower sharing and noise.

    Shapes:
        -> ``(n, n_eta, n_phi, 3)`` float32, channels (Tracks pT, ECAL energy, HCAL energy)
        in GeV, rows eta (ascending), columns phi (ascending from -pi).
    """
    cfg.validate()
    grid.validate(cfg.hcal_tower)
    p = particles
    n = int(n_events)
    h, w = grid.n_eta, grid.n_phi
    ev = p.event
    row = np.floor((p.eta + grid.eta_max) / grid.pixel_eta).astype(np.int64)

    def column(phi: np.ndarray) -> np.ndarray:
        return np.floor((phi + np.pi) / grid.pixel_phi).astype(np.int64) % w

    def accumulate(i: np.ndarray, j: np.ndarray, events: np.ndarray, values: np.ndarray) -> np.ndarray:
        inside = (i >= 0) & (i < h)
        flat = (events[inside] * h + i[inside]) * w + j[inside] % w  # phi wraps around
        counts = np.bincount(flat, weights=values[inside], minlength=n * h * w)  # int64 when nothing is inside
        return counts.astype(np.float64, copy=False).reshape(n, h, w)

    phi_ecal, reach_ecal = bend_phi(p.phi, p.pt, p.charge, cfg.ecal_radius, cfg.b_field)
    j_e = column(phi_ecal)
    dep = particle_deposits(p, cfg, rng)
    tracks = accumulate(row[dep.has_track], j_e[dep.has_track], ev[dep.has_track], dep.track_pt[dep.has_track])

    # ECAL: smear, share over 3x3 crystals (wrapping in phi), noise, zero suppression.
    sel = dep.in_calo & reach_ecal & (dep.e_ecal > 0)
    e = smear(dep.e_ecal[sel], cfg.ecal_stochastic, cfg.ecal_constant, rng)
    core, side = cfg.ecal_core_fraction, (1.0 - cfg.ecal_core_fraction) / 8.0
    di, dj = (a.ravel() for a in np.meshgrid(np.arange(-1, 2), np.arange(-1, 2), indexing="ij"))
    share = np.where((di == 0) & (dj == 0), core, side)
    ecal = accumulate(
        (row[sel][:, None] + di).ravel(), (j_e[sel][:, None] + dj).ravel(), np.repeat(ev[sel], 9), (e[:, None] * share).ravel()
    )
    ecal += cfg.ecal_noise * rng.standard_normal(ecal.shape)
    ecal[ecal < cfg.ecal_threshold] = 0.0

    # HCAL: smear, sum in towers, noise and zero suppression per tower, then upsample.
    phi_hcal, reach_hcal = bend_phi(p.phi, p.pt, p.charge, cfg.hcal_radius, cfg.b_field)
    sel = dep.in_calo & reach_hcal & (dep.e_hcal > 0)
    e = smear(dep.e_hcal[sel], cfg.hcal_stochastic, cfg.hcal_constant, rng)
    fine = accumulate(row[sel], column(phi_hcal)[sel], ev[sel], e)
    hcal = hcal_towers(fine, cfg, rng)

    return np.stack([tracks, ecal, hcal], axis=-1).astype(np.float32)
