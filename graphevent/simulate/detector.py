"""A documented toy detector that renders particles as ML4SCI-style jet images.

Each jet becomes a ``(125, 125, 3)`` float32 image centred on the jet axis, channels
(Tracks pT, ECAL energy, HCAL energy) as in the ML4SCI quark-gluon images and the CMS
end-to-end studies (Andrews et al., arXiv:1902.08276). Rows are pseudorapidity, columns
azimuth; one pixel is one CMS barrel ECAL crystal, 0.0174 x 0.0174. Every number below is
of the order of CMS's; ``docs/simulation.md`` gives the source of each.

What a particle leaves (``E`` its energy, ``pT`` its transverse momentum, all in GeV):

* Tracks: charged particles with ``pT > track_pt_min`` and ``|eta| < tracker_eta_max``
  record their smeared pT, ``sigma/pT = track_res_slope * pT (+) track_res_const``
  (``(+)`` adds in quadrature), at their impact point on the ECAL surface.
* ECAL: photons and electrons deposit all their energy. A hadron starts its shower in
  the ECAL with probability ``1 - exp(-ecal_depth_lambda)`` (23 cm of PbWO4 is about
  1.1 interaction lengths) and then leaves a fraction ``U(hadron_ecal_fraction)`` of its
  energy there; a charged hadron that does not, and every muon, leaves a MIP
  (``ecal_mip``). Each deposit is smeared with ``sigma/E = ecal_stochastic/sqrt(E) (+)
  ecal_constant`` and spread over 3x3 crystals: ``ecal_core_fraction`` in the hit
  crystal, the rest shared equally by its 8 neighbours (Moliere radius ~ 1 crystal).
* HCAL: hadrons deposit what they did not leave in the ECAL, muons ``hcal_mip``;
  smeared with ``sigma/E = hcal_stochastic/sqrt(E) (+) hcal_constant`` and summed in
  towers of 5x5 crystals (0.087 x 0.087).
* Charged particles bend in the solenoid field: at radius ``R`` their azimuth is shifted
  by ``-q * asin(0.3 B R / (2 pT))``; those that cannot reach a calorimeter's radius
  (``0.3 B R / (2 pT) >= 1``) leave nothing in it.
* Electronic noise (Gaussian, ``ecal_noise`` per crystal, ``hcal_noise`` per tower) is
  added everywhere, then zero suppression sets cells below ``threshold_sigma`` noise
  sigmas to 0. Tracks have no noise.
* The HCAL tower energy is then upsampled to the crystal grid: each of its 25 pixels
  holds ``tower energy / 25``, so summing the 25 pixels gives the tower energy back.

Calorimeter channels hold energy (not transverse energy), tracks hold pT, as in the
ML4SCI/E2E images. Towers are aligned with the image (the central tower is centred on
the jet axis), a simplification of CMS's fixed detector grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphevent.errors import ConfigError

#: Channel order of the rendered images (ML4SCI quark-gluon layout).
CHANNELS = ("tracks", "ecal", "hcal")

_INVISIBLE = (12, 14, 16)
_EM = (11, 22)
_MUON = 13


@dataclass(frozen=True)
class DetectorConfig:
    """Geometry, resolutions, noise and thresholds of the toy detector (GeV, metres, tesla).

    Args:
        image_size: pixels per side (ML4SCI: 125).
        pixel_size: eta and phi size of a pixel = one CMS barrel ECAL crystal (0.0174).
        hcal_tower: HCAL tower size in crystals per side (CMS: 5, i.e. 0.087).
        b_field: solenoid field in tesla (CMS: 3.8).
        ecal_radius, hcal_radius: inner radii of the ECAL (1.29 m) and HCAL barrels (1.77 m).
        tracker_eta_max: tracker acceptance (CMS: 2.5).
        calo_eta_max: calorimeter acceptance (CMS barrel + endcaps: 3.0).
        track_pt_min: tracks below this pT are not recorded.
        track_res_const, track_res_slope: ``sigma(pT)/pT = slope * pT (+) const``
            (CMS tracker: 1-2% at 100 GeV).
        ecal_stochastic, ecal_constant: ECAL resolution terms (CMS: 2.8%, 0.3-0.5%).
        ecal_noise: ECAL electronic noise per crystal (CMS barrel: ~40 MeV).
        ecal_core_fraction: share of an ECAL deposit in the hit crystal; the rest goes to
            its 8 neighbours equally (CMS: ~80% in 1 crystal, ~94% in 3x3).
        ecal_mip: ECAL deposit of a non-showering charged particle (PbWO4 dE/dx_min
            10.2 MeV/cm x 23 cm ~ 0.25 GeV).
        ecal_depth_lambda: ECAL depth in nuclear interaction lengths (23 cm / 20.3 cm).
        hadron_ecal_fraction: (low, high) of the uniform fraction of its energy that a
            hadron showering in the ECAL leaves there.
        hcal_stochastic, hcal_constant: HCAL resolution terms (CMS HB: ~100-115%, ~5%).
        hcal_noise: HCAL electronic noise per tower (CMS HB: ~0.2-0.3 GeV).
        hcal_mip: HCAL deposit of a muon (~2 GeV in the CMS barrel HCAL).
        threshold_sigma: zero suppression threshold in units of the channel's noise.
    """

    image_size: int = 125
    pixel_size: float = 0.0174
    hcal_tower: int = 5
    b_field: float = 3.8
    ecal_radius: float = 1.29
    hcal_radius: float = 1.77
    tracker_eta_max: float = 2.5
    calo_eta_max: float = 3.0
    track_pt_min: float = 1.0
    track_res_const: float = 0.005
    track_res_slope: float = 1.5e-4
    ecal_stochastic: float = 0.028
    ecal_constant: float = 0.005
    ecal_noise: float = 0.04
    ecal_core_fraction: float = 0.8
    ecal_mip: float = 0.25
    ecal_depth_lambda: float = 23.0 / 20.3
    hadron_ecal_fraction: tuple[float, float] = (0.1, 0.7)
    hcal_stochastic: float = 1.0
    hcal_constant: float = 0.05
    hcal_noise: float = 0.25
    hcal_mip: float = 2.0
    threshold_sigma: float = 3.0

    def validate(self, where: str = "detector") -> None:
        if self.image_size < 1:
            raise ConfigError(f"{where}.image_size: invalid value {self.image_size}; expected >= 1")
        if self.hcal_tower < 1 or self.image_size % self.hcal_tower:
            raise ConfigError(
                f"{where}.hcal_tower: invalid value {self.hcal_tower}; expected a divisor of image_size={self.image_size}"
            )
        if not 0.0 <= self.ecal_core_fraction <= 1.0:
            raise ConfigError(f"{where}.ecal_core_fraction: invalid value {self.ecal_core_fraction}; expected 0..1")
        low, high = self.hadron_ecal_fraction
        if not 0.0 <= low <= high <= 1.0:
            raise ConfigError(
                f"{where}.hadron_ecal_fraction: invalid value {self.hadron_ecal_fraction}; expected 0 <= low <= high <= 1"
            )
        for name in ("pixel_size", "ecal_radius", "hcal_radius"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{where}.{name}: invalid value {getattr(self, name)}; expected > 0")
        for name in ("b_field", "ecal_noise", "hcal_noise", "threshold_sigma", "track_pt_min"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}: invalid value {getattr(self, name)}; expected >= 0")

    @property
    def ecal_threshold(self) -> float:
        """Zero-suppression threshold of one ECAL crystal (GeV)."""
        return self.threshold_sigma * self.ecal_noise

    @property
    def hcal_threshold(self) -> float:
        """Zero-suppression threshold of one HCAL tower (GeV)."""
        return self.threshold_sigma * self.hcal_noise


@dataclass
class ParticleBatch:
    """Final-state particles of several events, flat over events.

    Attributes (all shape ``(P,)``): ``event`` int64 index of the event (0..n-1) each
    particle belongs to; ``pt``, ``eta``, ``phi``, ``e`` float64 (GeV, radians);
    ``pid`` int64 PDG id; ``charge`` float64 in units of e.
    """

    event: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    e: np.ndarray
    pid: np.ndarray
    charge: np.ndarray

    def __len__(self) -> int:
        return len(self.event)

    def event_slice(self, k: int) -> "ParticleBatch":
        """The particles of event ``k`` alone, renumbered as event 0 (``event`` must be sorted)."""
        lo, hi = np.searchsorted(self.event, [k, k + 1])
        fields = {name: getattr(self, name)[lo:hi] for name in ("pt", "eta", "phi", "e", "pid", "charge")}
        return ParticleBatch(event=np.zeros(hi - lo, dtype=np.int64), **fields)

    @classmethod
    def from_arrays(cls, **arrays: np.ndarray) -> "ParticleBatch":
        """Build from array-likes, casting each field to its documented dtype."""
        ints = {"event", "pid"}
        return cls(**{k: np.asarray(v, dtype=np.int64 if k in ints else np.float64) for k, v in arrays.items()})


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Map angles to [-pi, pi)."""
    return (np.asarray(phi) + np.pi) % (2.0 * np.pi) - np.pi


def bend_phi(phi: np.ndarray, pt: np.ndarray, charge: np.ndarray, radius: float, b_field: float) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth of a helix from the origin where it crosses ``radius``, and whether it gets there.

    Args:
        phi, pt, charge: initial azimuth, transverse momentum (GeV), charge (e).
        radius: cylinder radius in metres.
        b_field: field along +z in tesla (a positive particle's phi decreases).

    Returns:
        ``(phi_at_radius, reaches)``: neutral particles are unchanged and always reach.
    """
    s = 0.3 * b_field * radius / (2.0 * np.maximum(pt, 1e-12))
    charged = charge != 0
    reaches = ~charged | (s < 1.0)
    shift = np.where(charged & reaches, -np.sign(charge) * np.arcsin(np.minimum(s, 1.0)), 0.0)
    return wrap_phi(phi + shift), reaches


def smear(energy: np.ndarray, stochastic: float, constant: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian smearing with ``sigma/E = stochastic/sqrt(E) (+) constant``, clipped at 0."""
    e = np.maximum(energy, 0.0)
    sigma = np.sqrt(stochastic**2 * e + (constant * e) ** 2)
    return np.maximum(e + sigma * rng.standard_normal(e.shape), 0.0)


@dataclass
class Deposits:
    """What each particle leaves, before the detector's cells (all ``(P,)``).

    Attributes:
        has_track: the particle leaves a track (visible, charged, ``pT > track_pt_min``,
            ``|eta| < tracker_eta_max``).
        track_pt: its smeared track pT (GeV, >= 0; meaningful where ``has_track``).
        e_ecal, e_hcal: energy it leaves in the ECAL and in the HCAL, before smearing (GeV).
        in_calo: visible and within ``calo_eta_max``.
    """

    has_track: np.ndarray
    track_pt: np.ndarray
    e_ecal: np.ndarray
    e_hcal: np.ndarray
    in_calo: np.ndarray


def particle_deposits(p: ParticleBatch, cfg: DetectorConfig, rng: np.random.Generator) -> Deposits:
    """Smear track pT and split each particle's energy between ECAL and HCAL (module docstring).

    Draws, in this order, ``P`` normal numbers (track pT), ``P`` uniform numbers (whether a
    hadron showers in the ECAL) and ``P`` uniform numbers (the fraction it leaves there):
    every renderer that calls it consumes ``rng`` the same way.
    """
    absid = np.abs(p.pid)
    visible = ~np.isin(absid, _INVISIBLE)
    charged = p.charge != 0
    em = np.isin(absid, _EM)
    muon = absid == _MUON
    hadron = visible & ~em & ~muon
    has_track = visible & charged & (p.pt > cfg.track_pt_min) & (np.abs(p.eta) < cfg.tracker_eta_max)
    track_pt = p.pt * (1.0 + np.hypot(cfg.track_res_const, cfg.track_res_slope * p.pt) * rng.standard_normal(len(p)))
    showers_in_ecal = hadron & (rng.random(len(p)) < 1.0 - np.exp(-cfg.ecal_depth_lambda))
    low, high = cfg.hadron_ecal_fraction
    fraction = rng.uniform(low, high, len(p))
    e_ecal = np.where(em, p.e, 0.0)
    e_ecal = np.where(showers_in_ecal, fraction * p.e, e_ecal)
    mip = (hadron & charged & ~showers_in_ecal) | muon
    e_ecal = np.where(mip, np.minimum(cfg.ecal_mip, p.e), e_ecal)
    e_hcal = np.where(hadron, p.e - e_ecal, 0.0)
    e_hcal = np.where(muon, np.minimum(cfg.hcal_mip, np.maximum(p.e - e_ecal, 0.0)), e_hcal)
    in_calo = visible & (np.abs(p.eta) < cfg.calo_eta_max)
    return Deposits(has_track, np.maximum(track_pt, 0.0), e_ecal, e_hcal, in_calo)


def render_images(
    particles: ParticleBatch,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    cfg: DetectorConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render the particles of ``n`` events as detector images centred on each jet.

    The jet axis falls at the centre of pixel ``(image_size // 2, image_size // 2)``;
    pixel ``(i, j)`` covers ``eta - eta_jet`` in ``[(i - c - 1/2) s, (i - c + 1/2) s)``
    (``c = image_size // 2``, ``s = pixel_size``) and likewise phi for ``j``. Particles
    outside the window, neutrinos, and deposits outside the acceptance are dropped.

    Args:
        particles: all final-state particles of the events (event index 0..n-1).
        jet_eta, jet_phi: ``(n,)`` jet axis (pseudorapidity, azimuth) of each event.
        cfg: detector parameters.
        rng: random generator for smearing, shower sharing and noise.

    Shapes:
        ``jet_eta, jet_phi: (n,)`` -> ``(n, image_size, image_size, 3)`` float32,
        channels (Tracks pT, ECAL energy, HCAL energy) in GeV.
    """
    cfg.validate()
    jet_eta = np.asarray(jet_eta, dtype=np.float64)
    jet_phi = np.asarray(jet_phi, dtype=np.float64)
    n = len(jet_eta)
    size = cfg.image_size
    npix = size * size
    centre = size // 2

    p = particles
    ev = p.event
    deta = p.eta - jet_eta[ev]

    def pixel(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dphi = wrap_phi(phi - jet_phi[ev])
        i = np.floor(deta / cfg.pixel_size + centre + 0.5).astype(np.int64)
        j = np.floor(dphi / cfg.pixel_size + centre + 0.5).astype(np.int64)
        return i, j

    def accumulate(i: np.ndarray, j: np.ndarray, events: np.ndarray, values: np.ndarray) -> np.ndarray:
        inside = (i >= 0) & (i < size) & (j >= 0) & (j < size)
        flat = events[inside] * npix + i[inside] * size + j[inside]
        counts = np.bincount(flat, weights=values[inside], minlength=n * npix)
        return counts.astype(np.float64, copy=False).reshape(n, size, size)

    # Tracks at the ECAL surface.
    phi_ecal, reach_ecal = bend_phi(p.phi, p.pt, p.charge, cfg.ecal_radius, cfg.b_field)
    i_e, j_e = pixel(phi_ecal)
    dep = particle_deposits(p, cfg, rng)
    has_track = dep.has_track
    tracks = accumulate(i_e[has_track], j_e[has_track], ev[has_track], dep.track_pt[has_track])
    e_ecal, e_hcal, in_calo = dep.e_ecal, dep.e_hcal, dep.in_calo

    # ECAL: smear, then share over 3x3 crystals.
    sel = in_calo & reach_ecal & (e_ecal > 0)
    e = smear(e_ecal[sel], cfg.ecal_stochastic, cfg.ecal_constant, rng)
    core, side = cfg.ecal_core_fraction, (1.0 - cfg.ecal_core_fraction) / 8.0
    di, dj = np.meshgrid(np.arange(-1, 2), np.arange(-1, 2), indexing="ij")
    di, dj = di.ravel(), dj.ravel()
    share = np.where((di == 0) & (dj == 0), core, side)
    ecal = accumulate(
        (i_e[sel][:, None] + di).ravel(),
        (j_e[sel][:, None] + dj).ravel(),
        np.repeat(ev[sel], 9),
        (e[:, None] * share).ravel(),
    )
    ecal += cfg.ecal_noise * rng.standard_normal(ecal.shape)
    ecal[ecal < cfg.ecal_threshold] = 0.0

    # HCAL: smear, sum in towers, noise and zero suppression per tower, then upsample.
    phi_hcal, reach_hcal = bend_phi(p.phi, p.pt, p.charge, cfg.hcal_radius, cfg.b_field)
    i_h, j_h = pixel(phi_hcal)
    sel = in_calo & reach_hcal & (e_hcal > 0)
    e = smear(e_hcal[sel], cfg.hcal_stochastic, cfg.hcal_constant, rng)
    fine = accumulate(i_h[sel], j_h[sel], ev[sel], e)
    hcal = hcal_towers(fine, cfg, rng)

    return np.stack([tracks, ecal, hcal], axis=-1).astype(np.float32)


def hcal_towers(fine: np.ndarray, cfg: DetectorConfig, rng: np.random.Generator) -> np.ndarray:
    """HCAL images ``(N, H, W)`` from the energies of ``fine`` ``(N, H, W)`` cells: summed in towers
    of ``cfg.hcal_tower`` x ``hcal_tower`` cells, Gaussian noise and zero suppression per tower,
    each tower's energy spread evenly over its cells."""
    n, h, w = fine.shape
    t = cfg.hcal_tower
    towers = fine.reshape(n, h // t, t, w // t, t).sum(axis=(2, 4))
    towers += cfg.hcal_noise * rng.standard_normal(towers.shape)
    towers[towers < cfg.hcal_threshold] = 0.0
    return np.repeat(np.repeat(towers / (t * t), t, axis=1), t, axis=2)
