#!/usr/bin/env python
"""Speed of ``graphevent simulate qg``: jets/s overall and per core, acceptance, bytes per jet.

Runs :func:`graphevent.simulate.generate_qg` into a temporary directory and prints:

* jets/s over the whole run (wall clock: what a user waits);
* jets per CPU second of the workers (generation + detector emulation). This is the
  per-core rate and holds even on a busy shared machine;
* the Pythia acceptance (jets kept / events generated) and the HDF5 bytes per jet;
* the machine (CPU model, cores) and package versions.

Examples::

    python scripts/bench_simulate.py                       # 100 jets, 1 worker
    python scripts/bench_simulate.py --events 400 --workers 2
    python scripts/bench_simulate.py --pthat-min 450       # the faster, biased cut
    python scripts/bench_simulate.py --veto-scale 0        # without the parton-level veto
    python scripts/bench_simulate.py --check-veto 1000     # the veto's bias, see below

``--check-veto N`` generates N jets of each class WITHOUT vetoing, asks the parton-level
veto for its decision on every event, and prints how many accepted jets it would have
dropped (with a 95% upper limit on the fraction): the veto's bias, measured.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from graphevent.train.rundir import cpu_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--pthat-min", type=float, default=None, help="PhaseSpace:pTHatMin (default: QGSettings)")
    parser.add_argument("--veto-scale", type=float, default=None, help="parton-level veto scale, GeV (0 = off; default: QGSettings)")
    parser.add_argument("--check-veto", type=int, default=0, metavar="N", help="measure the veto's bias on N jets per class")
    args = parser.parse_args()

    from graphevent.simulate import generate_qg
    from graphevent.simulate.pythia import QGSettings

    overrides = {k: v for k, v in (("pthat_min", args.pthat_min), ("veto_scale", args.veto_scale)) if v is not None}
    settings = QGSettings(**overrides)
    if args.check_veto:
        check_veto(settings, args.check_veto, args.seed, args.workers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        s = generate_qg(args.events, Path(tmp) / "bench.h5", seed=args.seed, workers=args.workers, progress=False, settings=settings)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print(f"versions: {s['versions']}, pTHatMin {settings.pthat_min} GeV, veto scale {settings.veto_scale} GeV")
    print(f"{s['n_events']} jets, {s['workers']} worker(s): {s['wall_s']:.1f} s, {s['jets_per_s']:.2f} jets/s overall")
    print(f"per core: {s['jets_per_s_per_core']:.2f} jets per CPU-second (generation + detector)")
    print(
        f"acceptance: {s['acceptance']:.1%} of {s['events_tried']} Pythia events ({s['events_vetoed']} dropped by the veto); "
        f"HDF5 {s['bytes'] / s['n_events'] / 1e3:.2f} kB/jet"
    )


def _check_block(kind: str, block: int, settings, n: int, seed: int) -> tuple[str, int, int, float]:
    from graphevent.simulate.pythia import JetGenerator, block_seed

    gen = _GENERATORS.get(kind) or _GENERATORS.setdefault(kind, JetGenerator(kind, settings, veto="check"))
    jets = gen.generate(n, block_seed(seed, kind, block))
    return kind, len(jets), jets.n_would_veto, jets.seconds


_GENERATORS: dict = {}


def check_veto(settings, n: int, seed: int, workers: int) -> None:
    """Blocks of 50 jets of both classes over ``workers`` processes; prints the accepted jets the
    veto would have dropped, per class."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from scipy.stats import beta

    if settings.veto_scale <= 0:
        raise SystemExit("--check-veto needs a veto scale > 0")
    tasks = [(kind, b, settings, min(50, n - 50 * b), seed) for b in range((n + 49) // 50) for kind in ("quark", "gluon")]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_check_block, *zip(*tasks)))
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; {workers} workers")
    print(f"veto scale {settings.veto_scale} GeV, pT margin {settings.veto_pt_margin} GeV, rapidity margin {settings.veto_rap_margin}")
    for kind in ("quark", "gluon"):
        jets = sum(r[1] for r in results if r[0] == kind)
        lost = sum(r[2] for r in results if r[0] == kind)
        cpu = sum(r[3] for r in results if r[0] == kind)
        upper = beta.ppf(0.95, lost + 1, jets - lost)  # one-sided 95% upper limit on the lost fraction
        print(f"{kind}: {lost} of {jets} accepted jets would have been vetoed ({lost / jets:.2%}; 95% upper limit {upper:.2%}); {jets / cpu:.2f} jets/s per worker without veto")


if __name__ == "__main__":
    main()
