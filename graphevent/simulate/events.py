"""Whole collision events from Pythia 8: H -> gamma gamma, prompt diphotons, gamma + jet.

Three processes that physicists separate by their whole event, as in the CMS end-to-end
event classification study (Andrews et al., arXiv:1807.11916): pp collisions at 13 TeV,

* ``diphoton`` (label 0): prompt diphoton production, ``q qbar -> gamma gamma`` and
  ``g g -> gamma gamma`` (the irreducible background);
* ``hgg`` (label 1, the signal): gluon-fusion Higgs production, ``g g -> H``, with
  ``H -> gamma gamma`` (m_H = 125 GeV);
* ``gamma_jet`` (label 2): ``q g -> q gamma`` and ``q qbar -> g gamma`` (the reducible
  background: a jet faking the second photon).

Label 1 is the signal, as in every binary dataset here, so ``graphevent eval`` reports
the background rejection of each background against H -> gamma gamma without ``--signal``.

Phase space (:class:`EventSettings`): the two outgoing objects of the hard process (the
photons, or the photon and the parton) must both be in the barrel (``|eta| < 1.44``),
have ``pT > 20 GeV`` and an invariant mass within 100-150 GeV (the 2 -> 2 processes also
run with ``PhaseSpace:mHatMin/mHatMax`` and ``pTHatMin`` at these values). A Pythia
``UserHooks`` applies the cut at the process level, before the shower, multiple parton
interactions and hadronisation, so a rejected event costs almost nothing; parton shower,
MPI and hadronisation are on (default tune).

Per-event truth, the regression targets: ``m_gg`` is the invariant mass of the hard
process's two outgoing objects (the diphoton mass; for gamma + jet the photon-parton
mass), ``ht`` the scalar sum of the pT of the visible final-state particles inside the
image (``|eta| < 1.479``).

Randomness follows :mod:`graphevent.simulate.pythia`: each block of events of one class
re-seeds Pythia (``Rndm::init``) from (seed, class, block); ``PhaseSpace:increaseMaximum``
is off, so a block depends on these three numbers only, and the first k events of a block
are the same whatever its length. The detector emulation of each event has its own
generator, seeded from (seed, class, block, event).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphevent.errors import ConfigError
from graphevent.simulate.barrel import BarrelGrid, render_event_images
from graphevent.simulate.detector import CHANNELS, DetectorConfig, ParticleBatch
from graphevent.simulate.pythia import configured_pythia, pp_settings, pythia_seed
from graphevent.simulate.qg import check_args, plan_blocks, progress_object, require_sim, run_parallel
from graphevent.utils.outfile import OutputFile

#: Class names in label order (label = index); label 1 (H -> gamma gamma) is the signal.
CLASSES = ("diphoton", "hgg", "gamma_jet")
#: Label of each class in the image files.
LABELS = {name: i for i, name in enumerate(CLASSES)}
#: Per-event regression targets, in file order.
TARGETS = {
    "m_gg": "invariant mass of the hard process's two outgoing objects (GeV): the diphoton mass, "
    "for gamma_jet the photon-parton mass",
    "ht": "scalar sum of the pT of the visible final-state particles with |eta| < the image's eta_max (GeV)",
}


@dataclass(frozen=True)
class EventSettings:
    """Generator-level choices of ``graphevent simulate events``.

    Args:
        ecm: centre-of-mass energy in GeV.
        pt_min: lower cut on the pT of each outgoing object of the hard process (GeV); also
            ``PhaseSpace:pTHatMin`` of the 2 -> 2 processes.
        eta_max: cut on the |eta| of each outgoing object (the ECAL barrel's fiducial 1.44).
        mass_min, mass_max: window on the invariant mass of the two objects (GeV); also
            ``PhaseSpace:mHatMin/mHatMax`` of the 2 -> 2 processes (the Higgs, at 125 GeV,
            lies inside).
    """

    ecm: float = 13000.0
    pt_min: float = 20.0
    eta_max: float = 1.44
    mass_min: float = 100.0
    mass_max: float = 150.0

    def validate(self, where: str = "settings") -> None:
        if self.ecm <= 0 or self.pt_min < 0 or self.eta_max <= 0:
            raise ConfigError(f"{where}: ecm={self.ecm}, pt_min={self.pt_min}, eta_max={self.eta_max}; expected ecm > 0, pt_min >= 0, eta_max > 0")
        if not 0 <= self.mass_min < self.mass_max:
            raise ConfigError(f"{where}: mass window ({self.mass_min}, {self.mass_max}); expected 0 <= min < max")


def process_settings(kind: str, settings: EventSettings) -> list[str]:
    """The ``readString`` lines that choose the hard process of one class."""
    window = [
        f"PhaseSpace:mHatMin = {settings.mass_min}",
        f"PhaseSpace:mHatMax = {settings.mass_max}",
        f"PhaseSpace:pTHatMin = {settings.pt_min}",
    ]
    if kind == "hgg":
        return ["HiggsSM:gg2H = on", "25:m0 = 125.0", "25:onMode = off", "25:onIfMatch = 22 22"]
    if kind == "diphoton":
        return ["PromptPhoton:ffbar2gammagamma = on", "PromptPhoton:gg2gammagamma = on", *window]
    if kind == "gamma_jet":
        return ["PromptPhoton:qg2qgamma = on", "PromptPhoton:qqbar2ggamma = on", *window]
    raise ConfigError(f"process {kind!r}: unknown; expected one of {list(CLASSES)}")


def pythia_settings(kind: str, settings: EventSettings, init_seed: int) -> list[str]:
    """Every ``readString`` line that configures Pythia for one class."""
    return pp_settings(settings.ecm, process_settings(kind, settings), init_seed)


def block_seed(seed: int, kind: str, block: int) -> int:
    """Pythia seed (1..900,000,000) of one block, a hash of (seed, class, block)."""
    return pythia_seed(seed, CLASSES.index(kind), block, 0, 26)


def detector_rng(seed: int, kind: str, block: int, event: int) -> np.random.Generator:
    """numpy generator of the detector emulation of event ``event`` of a block."""
    return np.random.default_rng(np.random.SeedSequence([seed, CLASSES.index(kind), block, 1, event, 26]))


def _hard_objects(process) -> list:
    """The final-state particles of Pythia's hard-process record (two, for these processes)."""
    return [process[i] for i in range(process.size()) if process[i].isFinal()]


def _pair_mass(objects) -> float:
    e = sum(o.e() for o in objects)
    px = sum(o.px() for o in objects)
    py = sum(o.py() for o in objects)
    pz = sum(o.pz() for o in objects)
    return float(np.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0)))


def hard_process_veto(settings: EventSettings):
    """A ``pythia8mc.UserHooks`` that drops events whose hard process fails the cuts.

    Called once per event after the hard process (and the Higgs decay) is made, before the
    shower: both outgoing objects must have ``pT > pt_min``, ``|eta| < eta_max``, and their
    mass must lie in ``[mass_min, mass_max]``. Counters: ``checked``, ``vetoed``.
    """
    import pythia8mc

    s = settings

    class HardProcessVeto(pythia8mc.UserHooks):
        def __init__(self) -> None:
            super().__init__()
            self.checked = 0
            self.vetoed = 0

        def canVetoProcessLevel(self) -> bool:
            return True

        def doVetoProcessLevel(self, process) -> bool:
            self.checked += 1
            objects = _hard_objects(process)
            ok = (
                len(objects) == 2
                and all(o.pT() > s.pt_min and abs(o.eta()) < s.eta_max for o in objects)
                and s.mass_min <= _pair_mass(objects) <= s.mass_max
            )
            self.vetoed += int(not ok)
            return not ok

    return HardProcessVeto()


@dataclass
class EventBlock:
    """The accepted events of one block.

    Attributes:
        particles: every visible final-state particle of each event.
        m_gg, ht: ``(n,)`` float64 truth (see :data:`TARGETS`).
        n_tried: hard processes generated (accepted or vetoed).
        n_vetoed: those dropped by the hard-process cuts.
    """

    particles: ParticleBatch
    m_gg: np.ndarray
    ht: np.ndarray
    n_tried: int = 0
    n_vetoed: int = 0

    def __len__(self) -> int:
        return len(self.m_gg)


class EventGenerator:
    """One Pythia instance for one class.

    Args:
        kind: a name of :data:`CLASSES`.
        settings: generator-level choices.
        ht_eta_max: |eta| range of the particles summed into ``ht`` (the image's).
        init_seed: seed of ``Pythia::init`` (the same in every process).
    """

    def __init__(self, kind: str, settings: EventSettings, ht_eta_max: float, init_seed: int = 1) -> None:
        self.kind = kind
        self.ht_eta_max = ht_eta_max
        self.pythia = configured_pythia(pythia_settings(kind, settings, init_seed))
        self._veto = hard_process_veto(settings)
        self.pythia.setUserHooksPtr(self._veto)
        if not self.pythia.init():
            raise RuntimeError(f"Pythia initialisation failed for the {kind} process")

    def generate(self, n_events: int, seed: int) -> EventBlock:
        """Generate ``n_events`` events that pass the hard-process cuts (seed: see :func:`block_seed`)."""
        from graphevent.simulate.pythia import _particle_batch

        self.pythia.rndm.init(seed)
        checked, vetoed = self._veto.checked, self._veto.vetoed
        rows: list[np.ndarray] = []
        m_gg: list[float] = []
        failures = 0
        while len(rows) < n_events:
            if not self.pythia.next():
                failures += 1
                if failures > 1000:
                    raise RuntimeError(f"Pythia failed to generate 1000 {self.kind} events in a row")
                continue
            failures = 0
            m_gg.append(_pair_mass(_hard_objects(self.pythia.process)))
            rows.append(
                np.array(
                    [(q.px(), q.py(), q.pz(), q.e(), q.id(), q.charge()) for q in self.pythia.event if q.isFinal() and q.isVisible()],
                    dtype=np.float64,
                ).reshape(-1, 6)
            )
        particles = _particle_batch(rows)
        inside = np.abs(particles.eta) < self.ht_eta_max
        ht = np.bincount(particles.event[inside], weights=particles.pt[inside], minlength=len(rows))
        return EventBlock(particles, np.array(m_gg, np.float64), ht, self._veto.checked - checked, self._veto.vetoed - vetoed)


_GENERATORS: dict[str, EventGenerator] = {}


def _run_block(block, seed: int, settings: EventSettings, detector: tuple[DetectorConfig, BarrelGrid]) -> dict[str, Any]:
    """Generate and render one block (runs in a worker process; generators are cached per process)."""
    cfg, grid = detector
    key = f"{block.kind}:{settings!r}:{grid.eta_max}"
    if key not in _GENERATORS:
        _GENERATORS[key] = EventGenerator(block.kind, settings, grid.eta_max)
    cpu = time.process_time()
    events = _GENERATORS[key].generate(block.size, block_seed(seed, block.kind, block.block))
    images = np.zeros((len(events), grid.n_eta, grid.n_phi, len(CHANNELS)), np.float32)
    for k in range(len(events)):
        rng = detector_rng(seed, block.kind, block.block, k)
        images[k] = render_event_images(events.particles.event_slice(k), 1, cfg, grid, rng)[0]
    return {
        "images": images,
        "m_gg": events.m_gg,
        "ht": events.ht,
        "n_tried": events.n_tried,
        "n_vetoed": events.n_vetoed,
        "cpu_seconds": time.process_time() - cpu,
    }


def _metadata(seed: int, n_events: int, block_size: int, settings: EventSettings, detector: DetectorConfig, grid: BarrelGrid) -> dict[str, Any]:
    """Provenance stored in every image file (not the worker count: it changes nothing)."""
    from graphevent import __version__
    from graphevent.simulate.pythia import versions

    return {
        "generator": "graphevent simulate events",
        "graphevent_version": __version__,
        "seed": seed,
        "n_events": n_events,
        "block_size": block_size,
        "labels": LABELS,
        "channels": list(CHANNELS),
        "targets": TARGETS,
        "settings": dataclasses.asdict(settings),
        "pythia_settings": {kind: pythia_settings(kind, settings, 1) for kind in CLASSES},
        "detector": dataclasses.asdict(detector),
        "grid": {**dataclasses.asdict(grid), "pixel_eta": grid.pixel_eta, "pixel_phi": grid.pixel_phi, "phi_range": [-np.pi, np.pi]},
        "versions": versions(),
    }


def generate_events(
    n_events: int,
    out: str | Path,
    fmt: str | None = None,
    seed: int = 0,
    workers: int = 1,
    progress=True,
    *,
    overwrite: bool = False,
    detector: DetectorConfig | None = None,
    grid: BarrelGrid | None = None,
    settings: EventSettings | None = None,
    block_size: int = 25,
    compression_level: int = 6,
) -> dict[str, Any]:
    """Simulate whole events of the three classes and write them as whole-barrel images.

    Every class gets ``n_events // 3`` events, the first ``n_events % 3`` classes one more;
    blocks of the classes alternate in the file. Images are ``(n_eta, n_phi, 3)``
    (170 x 360 x Tracks/ECAL/HCAL by default, :mod:`graphevent.simulate.barrel`) in the
    ML4SCI HDF5 layout (``X_jets``, ``y``, ``m_gg``, ``ht``) or the E2E parquet layout.

    Args:
        n_events: number of events.
        out: output file; its parent directories are created.
        fmt: ``hdf5`` or ``parquet``; ``None`` picks from the suffix (``.parquet`` ->
            parquet, else hdf5).
        seed: master seed; the output is a function of (seed, n_events, block_size) only.
        workers: processes generating blocks (1 runs in this process).
        progress: ``True`` shows a rich progress bar (stderr), ``False`` nothing; or a
            :mod:`graphevent.utils.progress` object.
        overwrite: replace an existing output file written by ``graphevent simulate``.
        detector: detector physics (default :class:`DetectorConfig`).
        grid: the image's cells (default :class:`~graphevent.simulate.barrel.BarrelGrid`,
            CMS's 170 x 360).
        settings: generator choices (default :class:`EventSettings`).
        block_size: events per block (the unit of work and of seeding).
        compression_level: gzip level of the HDF5 output (6: ~4.5 kB and ~3 ms per event;
            9: 3.8 kB in ~12 ms, in the process that writes).

    Returns:
        A summary: ``out``, ``format``, ``n_events``, ``counts`` (events per class),
        ``labels``, ``seed``, ``workers``, ``wall_s``, ``events_per_s`` (wall clock),
        ``events_per_s_per_core`` (events per CPU second of generation + rendering),
        ``events_tried`` (hard processes generated), ``acceptance``, ``bytes``, ``versions``.

    Raises:
        ConfigError: bad argument, or pythia8mc/fastjet not installed.
        OutputError: ``out`` exists and ``overwrite`` is false, or is not a graphevent
            simulation, or cannot be written (:class:`~graphevent.utils.outfile.OutputFile`).
    """
    out = Path(out)
    fmt = check_args(n_events, out, fmt, seed, workers, block_size, overwrite, particles=False)
    detector = detector or DetectorConfig()
    detector.validate("detector")
    grid = grid or BarrelGrid()
    grid.validate(detector.hcal_tower)
    settings = settings or EventSettings()
    settings.validate("settings")
    require_sim()
    n_events = int(n_events)
    blocks = plan_blocks(n_events, block_size, CLASSES)
    counts = {kind: sum(b.size for b in blocks if b.kind == kind) for kind in CLASSES}
    metadata = _metadata(seed, n_events, block_size, settings, detector, grid)

    start = time.perf_counter()
    file = OutputFile(out, "simulate", overwrite=overwrite)
    totals = {"n_tried": 0, "cpu_seconds": 0.0}
    bar = progress_object(progress, "events")
    bar.start(n_events, "simulating whole events")
    writer = None
    try:
        tmp = file.acquire()
        writer = _image_writer(fmt, tmp, n_events, metadata, compression_level)

        def consume(block, result: dict[str, Any]) -> None:
            y = np.full(block.size, LABELS[block.kind], dtype=np.float32)
            writer.write(result["images"], y, *(result[key] for key in TARGETS))
            totals["n_tried"] += result["n_tried"]
            totals["cpu_seconds"] += result["cpu_seconds"]

        if workers == 1:
            for block in blocks:
                consume(block, _run_block(block, seed, settings, (detector, grid)))
                bar.advance(block.size)
        else:
            run_parallel(blocks, seed, settings, (detector, grid), workers, consume, bar.advance, run_block=_run_block)
        writer.close()
        file.commit()
    except BaseException:
        try:
            if writer is not None:
                writer.close()
        finally:
            file.abandon()
        raise
    finally:
        bar.stop()
    wall = time.perf_counter() - start
    return {
        "out": str(out),
        "format": fmt,
        "n_events": n_events,
        "counts": counts,
        "labels": dict(LABELS),
        "seed": seed,
        "workers": workers,
        "wall_s": wall,
        "events_per_s": n_events / wall,
        "events_per_s_per_core": n_events / max(totals["cpu_seconds"], 1e-9),
        "events_tried": totals["n_tried"],
        "acceptance": n_events / max(totals["n_tried"], 1),
        "bytes": out.stat().st_size,
        "versions": metadata["versions"],
    }


def _image_writer(fmt: str, path: Path, n_events: int, metadata: dict[str, Any], level: int):
    from graphevent.simulate.writers import E2EParquetWriter, ML4SCIHDF5Writer

    if fmt == "hdf5":
        return ML4SCIHDF5Writer(path, n_events, metadata, compression_level=level, targets=tuple(TARGETS))
    return E2EParquetWriter(path, n_events, metadata, targets=tuple(TARGETS))

