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
    args = parser.parse_args()

    from graphevent.simulate import generate_qg
    from graphevent.simulate.pythia import QGSettings

    settings = QGSettings() if args.pthat_min is None else QGSettings(pthat_min=args.pthat_min)
    with tempfile.TemporaryDirectory() as tmp:
        s = generate_qg(args.events, Path(tmp) / "bench.h5", seed=args.seed, workers=args.workers, progress=False, settings=settings)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print(f"versions: {s['versions']}, pTHatMin {settings.pthat_min} GeV")
    print(f"{s['n_events']} jets, {s['workers']} worker(s): {s['wall_s']:.1f} s, {s['jets_per_s']:.2f} jets/s overall")
    print(f"per core: {s['jets_per_s_per_core']:.2f} jets per CPU-second (generation + detector)")
    print(f"acceptance: {s['acceptance']:.1%} of {s['events_tried']} Pythia events; HDF5 {s['bytes'] / s['n_events'] / 1e3:.2f} kB/jet")


if __name__ == "__main__":
    main()
