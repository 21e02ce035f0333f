"""The whole-barrel renderer on hand-made particles: absolute positions, the phi seam, edges, towers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graphevent.errors import ConfigError
from graphevent.simulate.barrel import BarrelGrid, render_event_images
from graphevent.simulate.detector import DetectorConfig, ParticleBatch

GRID = BarrelGrid()
D_ETA, D_PHI = GRID.pixel_eta, GRID.pixel_phi

# No smearing, no noise, no bending: every deposit is deterministic.
EXACT = DetectorConfig(b_field=0.0, track_res_const=0.0, track_res_slope=0.0, ecal_stochastic=0.0, ecal_constant=0.0,
                       ecal_noise=0.0, hcal_stochastic=0.0, hcal_constant=0.0, hcal_noise=0.0)


def batch(*particles: tuple) -> ParticleBatch:
    """Particles as (event, pid, pt, eta, phi, charge) tuples (e = pt cosh eta)."""
    event, pid, pt, eta, phi, charge = (np.array(c, dtype=float) for c in zip(*particles))
    return ParticleBatch.from_arrays(event=event, pid=pid, pt=pt, eta=eta, phi=phi, e=pt * np.cosh(eta), charge=charge)


def centre(i: int, j: int) -> tuple[float, float]:
    """(eta, phi) of the centre of pixel (i, j)."""
    return -GRID.eta_max + (i + 0.5) * D_ETA, -math.pi + (j + 0.5) * D_PHI


def render(particles: ParticleBatch, n: int = 1, cfg: DetectorConfig = EXACT) -> np.ndarray:
    return render_event_images(particles, n, cfg, GRID, np.random.default_rng(0))


def test_cms_barrel_geometry_and_an_image_centred_on_eta_phi_zero():
    assert (GRID.n_eta, GRID.n_phi) == (170, 360)
    assert D_ETA == pytest.approx(0.0174) and D_PHI == pytest.approx(2 * math.pi / 360)
    # the image centre (between pixels 84/85 and 179/180) is the detector's (eta, phi) = (0, 0)
    assert centre(84, 179)[0] + centre(85, 180)[0] == pytest.approx(0.0, abs=1e-12)
    assert centre(84, 179)[1] + centre(85, 180)[1] == pytest.approx(0.0, abs=1e-12)


def test_photon_lands_at_its_absolute_position():
    eta, phi = centre(30, 250)
    img = render(batch((0, 22, 50.0, eta, phi, 0)))[0]
    assert img.shape == (170, 360, 3) and img.dtype == np.float32
    ecal = img[..., 1]
    assert ecal[30, 250] == pytest.approx(0.8 * 50.0 * np.cosh(eta), rel=1e-5)
    assert ecal[29:32, 249:252].sum() == pytest.approx(ecal.sum(), rel=1e-6)
    assert ecal[29, 249] == pytest.approx(0.025 * 50.0 * np.cosh(eta), rel=1e-5)
    assert img[..., 0].sum() == 0 and img[..., 2].sum() == 0


def test_ecal_shower_wraps_around_the_phi_seam():
    for j, other in ((359, 0), (0, 359)):
        eta, phi = centre(100, j)
        ecal = render(batch((0, 22, 40.0, eta, phi, 0)))[0][..., 1]
        e = 40.0 * np.cosh(eta)
        assert ecal[100, j] == pytest.approx(0.8 * e, rel=1e-5)
        # the neighbours across the seam get their 2.5% each; the whole shower stays in the image
        np.testing.assert_allclose(ecal[99:102, other], 0.025 * e, rtol=1e-5)
        assert ecal.sum() == pytest.approx(e, rel=1e-6)
    # phi = pi (outside [-pi, pi) by rounding) is column 0
    ecal = render(batch((0, 22, 40.0, 0.0, math.pi, 0)))[0][..., 1]
    assert ecal[:, 0].sum() > 0.8 * 40.0


def test_beyond_the_barrel_nothing_and_at_its_edge_part_of_the_shower():
    assert render(batch((0, 22, 40.0, 1.6, 0.3, 0)))[0].sum() == 0
    eta, phi = centre(169, 10)
    ecal = render(batch((0, 22, 40.0, eta, phi, 0)))[0][..., 1]
    assert ecal.sum() == pytest.approx((0.8 + 5 * 0.025) * 40.0 * np.cosh(eta), rel=1e-5)  # row 170 is outside


def test_hcal_towers_and_tracks_per_event():
    eta, phi = centre(52, 357)  # tower (10, 71): rows 50-54, columns 355-359
    img = render(batch((0, 211, 30.0, eta, phi, 1), (1, 22, 5.0, 0.0, 0.0, 0)), n=3)
    assert img.shape == (3, 170, 360, 3)
    hcal, tracks = img[0, ..., 2], img[0, ..., 0]
    assert tracks[52, 357] == pytest.approx(30.0) and tracks.sum() == pytest.approx(30.0)
    e_hcal = hcal.sum()
    assert e_hcal > 0 and np.count_nonzero(hcal) == 25 and np.count_nonzero(hcal[50:55, 355:360]) == 25
    np.testing.assert_allclose(hcal[50:55, 355:360], e_hcal / 25, rtol=1e-6)
    assert img[1, ..., 1].sum() == pytest.approx(5.0, rel=1e-6) and img[2].sum() == 0  # event 2 has no particle


def test_noise_fills_the_whole_grid():
    img = render(batch((0, 22, 40.0, 0.0, 0.0, 0)), cfg=DetectorConfig())[0]
    ecal = img[..., 1]
    noise = np.count_nonzero(ecal) - 9
    # P(N(0, 40 MeV) > 120 MeV) = 0.135% of 61,200 crystals: 83 expected
    assert 40 < noise < 140
    assert ecal[ecal > 0].min() >= 0.12


def test_grid_must_hold_whole_towers():
    with pytest.raises(ConfigError, match=r"^grid.n_phi: invalid value 358; expected a positive multiple of hcal_tower=5$"):
        BarrelGrid(n_phi=358).validate(5)
    with pytest.raises(ConfigError, match=r"^grid.eta_max: invalid value 0.0; expected > 0$"):
        BarrelGrid(eta_max=0.0).validate(5)
