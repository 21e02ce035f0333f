"""The toy detector on hand-made particles: positions, energies, towers, noise, bending."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from graphevent.errors import ConfigError
from graphevent.simulate.detector import DetectorConfig, ParticleBatch, bend_phi, render_images

PIX = 0.0174
C = 62  # centre pixel of a 125-pixel image

# No smearing, no noise, no bending: every deposit is deterministic.
EXACT = DetectorConfig(
    b_field=0.0,
    track_res_const=0.0,
    track_res_slope=0.0,
    ecal_stochastic=0.0,
    ecal_constant=0.0,
    ecal_noise=0.0,
    hcal_stochastic=0.0,
    hcal_constant=0.0,
    hcal_noise=0.0,
)


def batch(*particles: dict) -> ParticleBatch:
    """Particles given as dicts with event, pt, eta, phi, pid, charge (e = pt cosh eta)."""
    cols = {k: [p[k] for p in particles] for k in ("event", "pt", "eta", "phi", "pid", "charge")}
    cols["e"] = [p["pt"] * np.cosh(p["eta"]) for p in particles]
    return ParticleBatch.from_arrays(**cols)


def one(pid: int, pt: float, eta: float = 0.0, phi: float = 0.0, charge: float = 0.0, event: int = 0) -> dict:
    return {"event": event, "pt": pt, "eta": eta, "phi": phi, "pid": pid, "charge": charge}


def test_photon_lands_in_its_pixel_with_energy_within_resolution():
    cfg = DetectorConfig(ecal_noise=0.0, hcal_noise=0.0)
    e_true = 100.0
    # 3.2 pixels up in eta, 5.1 pixels down in phi from a jet at (0.4, 1.0).
    photon = one(22, e_true / np.cosh(0.4 + 3.2 * PIX), eta=0.4 + 3.2 * PIX, phi=1.0 - 5.1 * PIX)
    energies = []
    for seed in range(200):
        img = render_images(batch(photon), np.array([0.4]), np.array([1.0]), cfg, np.random.default_rng(seed))[0]
        i, j = C + 3, C - 5
        ecal = img[..., 1]
        assert ecal[i, j] == ecal.max()
        # The 3x3 block holds the whole (smeared) energy, the hit crystal 80% of it.
        block = ecal[i - 1 : i + 2, j - 1 : j + 2]
        np.testing.assert_allclose(ecal.sum(), block.sum(), rtol=1e-6)
        np.testing.assert_allclose(ecal[i, j], 0.8 * block.sum(), rtol=1e-5)
        np.testing.assert_allclose(block[0, 0], 0.025 * block.sum(), rtol=1e-5)
        assert img[..., 0].sum() == 0 and img[..., 2].sum() == 0  # no track, no HCAL
        energies.append(block.sum())
    sigma = e_true * np.hypot(0.028 / np.sqrt(e_true), 0.005)  # 0.57 GeV at 100 GeV
    assert abs(np.mean(energies) - e_true) < 5 * sigma / np.sqrt(len(energies))
    assert 0.8 * sigma < np.std(energies) < 1.2 * sigma


def test_neutral_hadron_fills_exactly_one_5x5_tower_with_equal_values():
    cfg = dataclasses.replace(EXACT, ecal_depth_lambda=0.0)  # never showers in the ECAL
    # K_L at +7.4 pixels in eta, -2.2 in phi: pixel (69, 60) -> tower rows 65..69, cols 60..64.
    klong = one(130, 40.0, eta=7.4 * PIX, phi=-2.2 * PIX)
    img = render_images(batch(klong), np.zeros(1), np.zeros(1), cfg, np.random.default_rng(0))[0]
    hcal = img[..., 2]
    mask = np.zeros_like(hcal, dtype=bool)
    mask[65:70, 60:65] = True
    np.testing.assert_allclose(hcal[mask], 40.0 * np.cosh(7.4 * PIX) / 25, rtol=1e-6)
    assert np.all(hcal[~mask] == 0)
    np.testing.assert_allclose(hcal.sum(), 40.0 * np.cosh(7.4 * PIX), rtol=1e-6)
    assert img[..., 1].sum() == 0 and img[..., 0].sum() == 0


def test_hadron_showering_in_ecal_splits_its_energy_between_calorimeters():
    cfg = dataclasses.replace(EXACT, ecal_depth_lambda=1e9, hadron_ecal_fraction=(0.3, 0.3))  # always showers, 30% in ECAL
    neutron = one(2112, 50.0)
    img = render_images(batch(neutron), np.zeros(1), np.zeros(1), cfg, np.random.default_rng(0))[0]
    np.testing.assert_allclose(img[..., 1].sum(), 15.0, rtol=1e-6)
    np.testing.assert_allclose(img[..., 2].sum(), 35.0, rtol=1e-6)
    np.testing.assert_allclose(img[C, C, 1], 12.0, rtol=1e-6)  # 80% of the ECAL share in the hit crystal


def test_zero_suppression_keeps_only_noise_above_threshold_at_the_gaussian_tail_rate():
    cfg = DetectorConfig()
    empty = ParticleBatch.from_arrays(event=[], pt=[], eta=[], phi=[], e=[], pid=[], charge=[])
    n = 40
    img = render_images(empty, np.zeros(n), np.zeros(n), cfg, np.random.default_rng(1))
    ecal, hcal = img[..., 1], img[..., 2]
    assert img[..., 0].sum() == 0
    assert ecal[ecal > 0].min() >= 0.12 - 1e-6  # 3 sigma of 0.04 GeV
    # P(noise > 3 sigma) = 1.35e-3: 843 +- 29 of 625,000 crystals.
    assert abs((ecal > 0).sum() - 1.35e-3 * ecal.size) < 5 * np.sqrt(1.35e-3 * ecal.size)
    towers = hcal[:, ::5, ::5]
    assert abs((towers > 0).sum() - 1.35e-3 * towers.size) < 5 * np.sqrt(1.35e-3 * towers.size)
    assert towers[towers > 0].min() * 25 >= 0.75 - 1e-5  # 3 sigma of 0.25 GeV per tower
    quiet = render_images(empty, np.zeros(n), np.zeros(n), dataclasses.replace(cfg, threshold_sigma=7.0), np.random.default_rng(1))
    assert np.count_nonzero(quiet) == 0


def test_image_is_centred_on_the_jet_axis_across_the_phi_wrap():
    # Jet at phi = pi - 0.005; a photon on the axis and one at phi = -pi + 0.0124 (+ 1 pixel).
    jet_phi = np.pi - 0.005
    particles = batch(one(22, 10.0, eta=1.5, phi=jet_phi), one(22, 20.0, eta=1.5, phi=-np.pi + 0.0124))
    img = render_images(particles, np.array([1.5]), np.array([jet_phi]), EXACT, np.random.default_rng(0))[0]
    ecal = img[..., 1]
    np.testing.assert_allclose(ecal[C, C], 0.8 * 10 * np.cosh(1.5) + 0.025 * 20 * np.cosh(1.5), rtol=1e-6)
    np.testing.assert_allclose(ecal[C, C + 1], 0.8 * 20 * np.cosh(1.5) + 0.025 * 10 * np.cosh(1.5), rtol=1e-6)
    # Energy-weighted centroid of the ECAL image sits between the two photons.
    rows, cols = np.indices(ecal.shape)
    assert np.isclose((ecal * rows).sum() / ecal.sum(), C)
    assert np.isclose((ecal * cols).sum() / ecal.sum(), C + 2 / 3, atol=1e-6)


def test_charged_tracks_bend_with_the_field_and_record_pt():
    cfg = dataclasses.replace(DetectorConfig(), track_res_const=0.0, track_res_slope=0.0)
    # 10 GeV: dphi = -q asin(0.3 * 3.8 * 1.29 / 20) = -q 0.0736 rad = -q 4.23 pixels.
    particles = batch(one(211, 10.0, charge=1.0, event=0), one(-211, 10.0, charge=-1.0, event=1))
    img = render_images(particles, np.zeros(2), np.zeros(2), cfg, np.random.default_rng(0))
    assert img[0, C, C - 4, 0] == pytest.approx(10.0)
    assert img[1, C, C + 4, 0] == pytest.approx(10.0)
    assert np.count_nonzero(img[..., 0]) == 2


def test_track_resolution_and_thresholds():
    cfg = DetectorConfig(b_field=0.0)
    pions = batch(*[one(211, 100.0, charge=1.0, event=k) for k in range(300)])
    img = render_images(pions, np.zeros(300), np.zeros(300), cfg, np.random.default_rng(3))
    pt = img[:, C, C, 0]
    sigma = 100.0 * np.hypot(0.005, 1.5e-4 * 100.0)  # 1.58 GeV
    assert abs(pt.mean() - 100.0) < 5 * sigma / np.sqrt(300)
    assert 0.8 * sigma < pt.std() < 1.2 * sigma
    # Below track_pt_min, outside the tracker, or too soft to reach the ECAL: no track.
    soft = batch(one(211, 0.5, charge=1.0), one(211, 5.0, eta=2.7, charge=1.0, event=0))
    img = render_images(soft, np.array([2.0]), np.zeros(1), dataclasses.replace(cfg, b_field=3.8), np.random.default_rng(0))
    assert img[0, ..., 0].sum() == 0


def test_bend_phi_formula_and_curlers():
    phi, reaches = bend_phi(np.array([0.1, 0.1, 0.1, 0.1]), np.array([1.0, 1.0, 0.5, 1.0]), np.array([1.0, -1.0, 1.0, 0.0]), 1.29, 3.8)
    np.testing.assert_allclose(phi[:2], [0.1 - np.arcsin(0.7353), 0.1 + np.arcsin(0.7353)], rtol=1e-4)
    assert reaches.tolist() == [True, True, False, True]  # 0.5 GeV curls up before 1.29 m
    assert phi[3] == pytest.approx(0.1)


def test_neutrinos_are_invisible_and_muons_leave_mips():
    particles = batch(one(12, 100.0), one(13, 50.0, charge=-1.0, event=1))
    img = render_images(particles, np.zeros(2), np.zeros(2), dataclasses.replace(EXACT, track_pt_min=1000.0), np.random.default_rng(0))
    assert np.count_nonzero(img[0]) == 0
    np.testing.assert_allclose(img[1, ..., 1].sum(), 0.25, rtol=1e-6)
    np.testing.assert_allclose(img[1, ..., 2].sum(), 2.0, rtol=1e-6)


def test_batched_rendering_equals_one_event_at_a_time():
    rng = np.random.default_rng(5)
    n, per = 4, 30
    pids = rng.choice([22, 211, -211, 130, 2112, 11, 13], size=n * per)
    particles = ParticleBatch.from_arrays(
        event=np.repeat(np.arange(n), per),
        pt=rng.uniform(1.5, 50.0, n * per),
        eta=rng.normal(0.0, 0.3, n * per),
        phi=rng.normal(0.0, 0.3, n * per),
        e=rng.uniform(60.0, 80.0, n * per),
        pid=pids,
        charge=np.where(np.isin(pids, [211, -11, -13]), 1.0, np.where(np.isin(pids, [-211, 11, 13]), -1.0, 0.0)),
    )
    cfg = dataclasses.replace(EXACT, b_field=3.8, ecal_depth_lambda=0.0)
    jet_eta, jet_phi = rng.normal(0, 0.05, n), rng.normal(0, 0.05, n)
    together = render_images(particles, jet_eta, jet_phi, cfg, np.random.default_rng(0))
    assert together.shape == (n, 125, 125, 3) and together.dtype == np.float32
    for k in range(n):
        sel = particles.event == k
        alone = ParticleBatch(**{f.name: getattr(particles, f.name)[sel] for f in dataclasses.fields(ParticleBatch)})
        alone.event = np.zeros(sel.sum(), dtype=np.int64)
        single = render_images(alone, jet_eta[k : k + 1], jet_phi[k : k + 1], cfg, np.random.default_rng(0))
        np.testing.assert_allclose(together[k], single[0], rtol=1e-6, atol=1e-6)


def test_invalid_detector_config_names_the_field():
    with pytest.raises(ConfigError, match=r"detector.hcal_tower: invalid value 4; expected a divisor of image_size=125"):
        DetectorConfig(hcal_tower=4).validate()
    with pytest.raises(ConfigError, match=r"detector.ecal_core_fraction: invalid value 1.5"):
        DetectorConfig(ecal_core_fraction=1.5).validate()
