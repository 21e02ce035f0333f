"""``generate_qg``: simulated quark and gluon jet images, in parallel, written block by block.

The sample is cut into blocks of ``block_size`` jets of one class; quark blocks and gluon
blocks alternate in the file. A block's content depends only on (seed, class, block
index) (see :mod:`graphevent.simulate.pythia`), so the output is the same whatever the
number of worker processes, and a smaller sample with the same seed is a prefix of every
block of a larger one. Workers generate and render blocks; the parent writes them in
order to files with temporary names and renames those when everything is written."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import importlib.util
import multiprocessing
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from graphevent.errors import ConfigError
from graphevent.utils.outfile import OutputFile
from graphevent.simulate.detector import CHANNELS, DetectorConfig, render_images

if TYPE_CHECKING:
    from graphevent.simulate.pythia import QGSettings

#: Label convention of the ML4SCI quark-gluon images (and of every image file written here).
ML4SCI_LABELS = {"quark": 0, "gluon": 1}
#: Label convention of the energyflow particle files (and of the ``.npz`` written here).
ENERGYFLOW_LABELS = {"quark": 1, "gluon": 0}

ImageFormat = Literal["hdf5", "parquet"]
_SUFFIXES = {".h5": "hdf5", ".hdf5": "hdf5", ".parquet": "parquet"}


def require_sim() -> None:
    """Raise ConfigError naming the install command if the ``[sim]`` extra is missing."""
    missing = [name for name in ("pythia8mc", "fastjet") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"graphevent simulate needs the optional package(s) {', '.join(missing)}; "
            "install them with: pip install 'graphevent[sim]'"
        )


def sample_path() -> Path:
    """The 2000-jet sample shipped with the package (ML4SCI HDF5; see graphevent/sample/README.md)."""
    return Path(__file__).resolve().parent.parent / "sample" / "qg_sample.h5"


def particles_path(out: str | Path) -> Path:
    """Where the particle-level ``.npz`` of an image file ``out`` goes: ``<stem>_particles.npz``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_particles.npz")


@dataclasses.dataclass(frozen=True)
class _Block:
    index: int  # position in the file's block order
    kind: str
    block: int  # index among the blocks of this class
    size: int
    start: int  # first event of the block in the file


def plan_blocks(n_events: int, block_size: int, classes: tuple[str, ...] = ("quark", "gluon")) -> list[_Block]:
    """Blocks of each class, in turn; every class gets ``n_events // len(classes)`` events and
    the first ``n_events % len(classes)`` classes one more (``n_events - n_events // 2`` quark jets)."""
    k = len(classes)
    counts = {kind: n_events // k + int(i < n_events % k) for i, kind in enumerate(classes)}
    sizes = {kind: [min(block_size, n - b) for b in range(0, n, block_size)] for kind, n in counts.items()}
    blocks: list[_Block] = []
    start = 0
    for b in range(max(len(s) for s in sizes.values())):
        for kind in classes:
            if b < len(sizes[kind]):
                blocks.append(_Block(len(blocks), kind, b, sizes[kind][b], start))
                start += sizes[kind][b]
    return blocks


_GENERATORS: dict[str, Any] = {}


def _run_block(block: _Block, seed: int, settings, detector: DetectorConfig) -> dict[str, Any]:
    """Generate and render one block (runs in a worker process; generators are cached per process)."""
    from graphevent.simulate.pythia import JetGenerator, block_seed, detector_rng

    key = f"{block.kind}:{settings!r}"
    if key not in _GENERATORS:
        _GENERATORS[key] = JetGenerator(block.kind, settings)
    cpu = time.process_time()
    jets = _GENERATORS[key].generate(block.size, block_seed(seed, block.kind, block.block))
    images = np.zeros((len(jets), detector.image_size, detector.image_size, len(CHANNELS)), np.float32)
    for k in range(len(jets)):
        rng = detector_rng(seed, block.kind, block.block, k)
        images[k] = render_images(jets.particles.event_slice(k), jets.eta[k : k + 1], jets.phi[k : k + 1], detector, rng)[0]
    return {
        "images": images,
        "m0": jets.mass,
        "pt": jets.pt,
        "constituents": jets.constituents,
        "n_tried": jets.n_tried,
        "n_vetoed": jets.n_vetoed,
        "cpu_seconds": time.process_time() - cpu,
    }


def progress_object(progress, unit: str = "jets"):
    """``True`` -> a rich bar counting ``unit``, ``False``/``None`` -> silent, else the object given."""
    from graphevent.utils.progress import NullProgress, RichProgress

    if progress is True:
        return RichProgress(unit)
    if progress is False or progress is None:
        return NullProgress()
    return progress


def check_args(
    n_events: int, out: Path, fmt: str | None, seed: int, workers: int, block_size: int, overwrite: bool, particles: bool
) -> str:
    """The output format of a simulation (``fmt``, else from ``out``'s suffix) after checking its
    arguments (shared by ``simulate qg`` and ``simulate events``); one-line errors otherwise."""
    if not isinstance(n_events, (int, np.integer)) or n_events < 1:
        raise ConfigError(f"--events: invalid value {n_events!r}; expected an integer >= 1")
    if seed < 0:
        raise ConfigError(f"--seed: invalid value {seed}; expected an integer >= 0")
    if workers < 1:
        raise ConfigError(f"--workers: invalid value {workers}; expected an integer >= 1")
    if block_size < 1:
        raise ConfigError(f"block_size: invalid value {block_size}; expected an integer >= 1")
    if fmt is None:
        fmt = _SUFFIXES.get(out.suffix.lower(), "hdf5")
    if fmt not in ("hdf5", "parquet"):
        raise ConfigError(f"--format: invalid value {fmt!r}; expected one of 'hdf5', 'parquet'")
    for path in [out, particles_path(out)] if particles else [out]:
        OutputFile(path, "simulate", overwrite=overwrite).check()
    return fmt


def _metadata(seed: int, n_events: int, block_size: int, settings: QGSettings, detector: DetectorConfig) -> dict[str, Any]:
    """Provenance stored in every image file (not the worker count: it changes nothing)."""
    from graphevent import __version__
    from graphevent.simulate.pythia import pythia_settings, versions

    return {
        "generator": "graphevent simulate qg",
        "graphevent_version": __version__,
        "seed": seed,
        "n_events": n_events,
        "block_size": block_size,
        "labels": ML4SCI_LABELS,
        "channels": list(CHANNELS),
        "targets": {"m0": "particle-level jet mass (GeV)", "pt": "particle-level jet pT (GeV)"},
        "settings": dataclasses.asdict(settings),
        "pythia_settings": {kind: pythia_settings(kind, settings, 1) for kind in ("quark", "gluon")},
        "detector": dataclasses.asdict(detector),
        "versions": versions(),
    }


def generate_qg(
    n_events: int,
    out: str | Path,
    fmt: ImageFormat | None = None,
    seed: int = 0,
    workers: int = 1,
    progress=True,
    *,
    overwrite: bool = False,
    particles: bool = True,
    detector: DetectorConfig | None = None,
    settings: QGSettings | None = None,
    block_size: int = 25,
    compression_level: int = 9,
) -> dict[str, Any]:
    """Simulate quark and gluon jets and write them as ML4SCI HDF5 or E2E parquet images.

    Half the jets are quark jets (label 0), half gluon jets (label 1), the ML4SCI
    convention; an odd count gives the extra jet to quarks. With ``particles`` the
    particle-level jets are also written in the energyflow layout to
    ``<stem>_particles.npz`` next to ``out`` (same jet order; energyflow labels,
    1 = quark).

    Args:
        n_events: number of jets.
        out: output file; its parent directories are created.
        fmt: ``hdf5`` (ML4SCI) or ``parquet`` (E2E); ``None`` picks from the suffix
            (``.parquet`` -> parquet, else hdf5).
        seed: master seed; the output is a function of (seed, n_events, block_size) only.
        workers: processes generating blocks (1 runs in this process).
        progress: ``True`` shows a rich progress bar with the jet rate (stderr), ``False``
            nothing; or a :mod:`graphevent.utils.progress` object.
        overwrite: replace existing output files.
        particles: also write the particle-level ``.npz``.
        detector: detector emulation parameters (default :class:`DetectorConfig`).
        settings: generator choices (default :class:`~graphevent.simulate.pythia.QGSettings`).
        block_size: jets per block (the unit of work and of seeding).
        compression_level: gzip level of the HDF5 output.

    Returns:
        A summary: ``out``, ``particles`` (path or None), ``format``, ``n_events``,
        ``n_quark``, ``n_gluon``, ``labels``, ``seed``, ``workers``, ``wall_s``,
        ``jets_per_s`` (overall, wall clock), ``jets_per_s_per_core`` (jets per CPU second
        of generation + rendering in the workers: the per-core rate, even on a busy
        machine), ``events_tried`` (Pythia events, those dropped by the parton-level veto included),
        ``events_vetoed``, ``acceptance``, ``bytes``, ``versions``.

    Raises:
        ConfigError: bad argument, or pythia8mc/fastjet not installed.
        OutputError: ``out`` (or its particles file) exists and ``overwrite`` is false, or is
            not a graphevent simulation, or cannot be written
            (:class:`~graphevent.utils.outfile.OutputFile`).
    """
    out = Path(out)
    fmt = check_args(n_events, out, fmt, seed, workers, block_size, overwrite, particles)
    from graphevent.simulate.pythia import QGSettings

    detector = detector or DetectorConfig()
    detector.validate("detector")
    settings = settings or QGSettings()
    settings.validate("settings")
    require_sim()
    n_events = int(n_events)
    blocks = plan_blocks(n_events, block_size)
    n_quark = sum(b.size for b in blocks if b.kind == "quark")
    npz_out = particles_path(out) if particles else None
    metadata = _metadata(seed, n_events, block_size, settings, detector)

    start = time.perf_counter()
    outputs = _Outputs(out, npz_out, fmt, n_events, metadata, compression_level, overwrite)
    bar = progress_object(progress)
    bar.start(n_events, "simulating q/g jets")
    try:
        if workers == 1:
            for block in blocks:
                outputs.write(block, _run_block(block, seed, settings, detector))
                bar.advance(block.size)
        else:
            run_parallel(blocks, seed, settings, detector, workers, outputs.write, bar.advance)
        outputs.commit()
    except BaseException:
        outputs.discard()
        raise
    finally:
        bar.stop()
    wall = time.perf_counter() - start
    return {
        "out": str(out),
        "particles": str(npz_out) if npz_out else None,
        "format": fmt,
        "n_events": n_events,
        "n_quark": n_quark,
        "n_gluon": n_events - n_quark,
        "labels": dict(ML4SCI_LABELS),
        "seed": seed,
        "workers": workers,
        "wall_s": wall,
        "jets_per_s": n_events / wall,
        "jets_per_s_per_core": n_events / max(outputs.cpu_seconds, 1e-9),
        "events_tried": outputs.n_tried + outputs.n_vetoed,
        "events_vetoed": outputs.n_vetoed,
        "acceptance": n_events / max(outputs.n_tried + outputs.n_vetoed, 1),
        "bytes": out.stat().st_size,
        "versions": metadata["versions"],
    }


class _Outputs:
    """The files of one run, written under temporary names and renamed by :meth:`commit`."""

    def __init__(self, out: Path, npz_out: Path | None, fmt: str, n_events: int, metadata: dict[str, Any], level: int,
                 overwrite: bool) -> None:
        from graphevent.simulate.writers import E2EParquetWriter, EnergyFlowNpzWriter, ML4SCIHDF5Writer

        self.files = [OutputFile(path, "simulate", overwrite=overwrite) for path in [out] + ([npz_out] if npz_out else [])]
        self.n_tried = 0
        self.n_vetoed = 0
        self.cpu_seconds = 0.0
        self.images = self.particles = None
        try:
            temp = [f.acquire() for f in self.files]
            self.particles = EnergyFlowNpzWriter(temp[1], metadata) if npz_out else None
            if fmt == "hdf5":
                self.images = ML4SCIHDF5Writer(temp[0], n_events, metadata, compression_level=level)
            else:
                self.images = E2EParquetWriter(temp[0], n_events, metadata)
        except BaseException:
            self.discard()
            raise

    def write(self, block: _Block, result: dict[str, Any]) -> None:
        y = np.full(block.size, ML4SCI_LABELS[block.kind], dtype=np.float32)
        self.images.write(result["images"], y, result["m0"], result["pt"])
        if self.particles is not None:
            self.particles.write(result["constituents"], np.full(block.size, block.kind == "quark"))
        self.n_tried += result["n_tried"]
        self.n_vetoed += result["n_vetoed"]
        self.cpu_seconds += result["cpu_seconds"]

    def commit(self) -> None:
        """Finish every file, then rename them (particles first, images last)."""
        self.images.close()
        if self.particles is not None:
            self.particles.close()
        for f in reversed(self.files):
            f.commit()

    def discard(self) -> None:
        """Close and delete the temporary files (earlier outputs stay as they were)."""
        try:
            if self.images is not None:
                self.images.close()
        finally:
            for f in self.files:
                f.abandon()


def _ignore_sigint() -> None:
    """A pool worker leaves Ctrl-C (SIGINT to the process group) to the parent, which stops the pool."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_parallel(blocks, seed, settings, detector, workers, consume, advance, run_block=_run_block) -> None:
    """Run blocks in ``workers`` spawned processes, at most 2 per worker in flight, consumed in order.

    ``run_block(block, seed, settings, detector)`` makes one block's result (a module-level
    function, so that spawned processes can import it).
    """
    context = multiprocessing.get_context("spawn")
    pending: dict[cf.Future, _Block] = {}
    done: dict[int, tuple[_Block, dict[str, Any]]] = {}
    next_submit = 0
    next_write = 0
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_ignore_sigint) as pool:
        try:
            while next_write < len(blocks):
                while next_submit < len(blocks) and len(pending) + len(done) < 2 * workers:
                    block = blocks[next_submit]
                    pending[pool.submit(run_block, block, seed, settings, detector)] = block
                    next_submit += 1
                finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    block = pending.pop(future)
                    done[block.index] = (block, future.result())
                while next_write in done:
                    block, result = done.pop(next_write)
                    consume(block, result)
                    advance(block.size)
                    next_write += 1
        except BaseException:  # an error, or SIGINT/SIGTERM: stop now, not after the blocks in flight (minutes)
            pool.shutdown(wait=False, cancel_futures=True)
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            raise
