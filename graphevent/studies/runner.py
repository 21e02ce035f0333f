"""Run a study's jobs: subprocesses of the ``graphevent`` CLI, several at once, resumable.

A job starts once the jobs it depends on are done, at most ``parallel`` at a time, in list
order otherwise. Each writes its output to its own log (``WORK/logs/KEY.log``); when it exits
0 the runner writes a stamp (``WORK/stamps/KEY.json``: the command and its wall seconds). A
job is finished, and skipped when the study is run again, while its output exists and its
stamp holds the same command (a ``cached`` job, a simulated file, only needs its output): an
interrupted study resumes where it stopped, and a changed command runs again. A training run
that was interrupted (its command started, ``checkpoints/last.pt`` written, no stamp) goes on
from its last checkpoint: the same command with ``--resume`` in place of ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from fnmatch import fnmatchcase
from pathlib import Path
from typing import NoReturn

from graphevent.errors import ConfigError, GraphEventError, RunError
from graphevent.studies.plan import STAGES, Job, Plan, jobs

ROOT = Path(__file__).resolve().parents[2]


def refuse(message: str) -> NoReturn:
    """A study script's answer to bad input, as the CLI's: ``message`` as one line on stderr, exit status 2."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def shown(cmd: Sequence[str]) -> str:
    """``cmd`` as a shell line, ``graphevent`` for this interpreter's CLI, paths relative to the checkout."""
    text = shlex.join(map(str, cmd))
    return text.replace(f"{shlex.quote(sys.executable)} -m graphevent.cli.app", "graphevent").replace(f"{ROOT}/", "")


def add_study_options(ap: argparse.ArgumentParser, workdir: str) -> None:
    """The options every study script takes after its own: how and where its jobs run
    (``--workdir``'s default described by ``workdir``), the page its report writes, and
    ``--note`` and ``--dry-run``, which :func:`study_argv` leaves out of the command it shows."""
    ap.add_argument("--gpus", type=int, default=0, help="GPUs per training run (0 = CPU)")
    ap.add_argument("--workers", type=int, default=2, help="processes for simulation and preprocessing")
    ap.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE", help="extra --set for every training run (repeatable)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("GRAPHEVENT_CACHE", Path.home() / ".cache/graphevent")))
    ap.add_argument("--workdir", type=Path, help=f"default: {workdir}")
    ap.add_argument("--results", type=Path, default=ROOT / "docs/results.md", help="page whose leading section the study writes")
    ap.add_argument("--note", help="a line added to the results section (e.g. what else ran on the machine)")
    ap.add_argument("--only", nargs="+", metavar="KEY", help="run only the jobs with these keys (shell patterns, e.g. "
                    "'particlenet @ 0.01 seed [5-9]', 'pretrain masked_gt', 'eval 0.01 seed 0') and what they need; no report")
    add_run_options(ap, "training runs at once (GPU: several share one device)", "print every command of the selected parts and stop")


def only(jobs: Sequence[Job], patterns: Sequence[str]) -> list[Job]:
    """The ``jobs`` whose key matches one of the shell ``patterns`` (``fnmatch``, case-sensitive),
    with every job they depend on, directly or not, in plan order: the filter of ``--only``.

    Raises:
        ConfigError: a pattern matches no job's key.
    """
    by_key = {j.key: j for j in jobs}
    if lost := [p for p in patterns if not any(fnmatchcase(k, p) for k in by_key)]:
        examples = {j.stage: j.key for j in reversed(jobs)}  # the first key of each stage
        raise ConfigError(f"--only {lost[0]!r}: matches no job of the study; expected keys like "
                          f"{', '.join(map(repr, reversed(examples.values())))}")
    keep = {k for k in by_key if any(fnmatchcase(k, p) for p in patterns)}
    todo = list(keep)
    while todo:
        for dep in by_key[todo.pop()].deps:
            if dep in by_key and dep not in keep:
                keep.add(dep)
                todo.append(dep)
    return [j for j in jobs if j.key in keep]


def study_jobs(build: Callable[[], Plan], args: argparse.Namespace) -> tuple[Plan, list[Job]]:
    """A study script's plan (``build()``) and its jobs in ``args.workdir``, those of ``args.only``
    (:func:`only`) if given; a plan or pattern the library rejects is refused (:func:`refuse`)."""
    try:
        plan = build()
        planned = jobs(plan, args.workdir, args.cache)
        return plan, only(planned, args.only) if args.only else planned
    except GraphEventError as e:
        refuse(str(e))


NO_REPORT = "--only: no report (a report covers every run of the study)"


def add_run_options(ap: argparse.ArgumentParser, parallel: str = "runs at once", dry_run: str = "print every command and stop") -> None:
    """``--parallel`` and ``--dry-run`` (:func:`run_or_print`), with their help texts."""
    ap.add_argument("--parallel", type=int, default=1, help=parallel)
    ap.add_argument("--dry-run", action="store_true", help=dry_run)


def study_argv(argv: Sequence[str]) -> list[str]:
    """The options that define a study, for the command its report shows: ``argv`` without
    ``--part`` and ``--note`` (and their values, ``--part x`` or ``--part=x``), ``--force`` and
    ``--dry-run``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--part", "--note"):
            skip = True
        elif not (a.startswith(("--part=", "--note=")) or a in ("--force", "--dry-run")):
            out.append(a)
    return out


def _name(job: Job) -> str:
    return job.key.replace(" ", "_").replace("/", "_")


def stamp_path(work: Path, job: Job) -> Path:
    return work / "stamps" / f"{_name(job)}.json"


def started_path(work: Path, job: Job) -> Path:
    """Where :func:`run_one` records the command it started (for :func:`resumed_command`)."""
    return work / "stamps" / f"{_name(job)}.started"


def is_done(work: Path, job: Job) -> bool:
    """Whether ``job`` finished: its output exists and (unless cached) its stamp holds the same command."""
    if not job.out.exists():
        return False
    if job.cached:
        return True
    stamp = stamp_path(work, job)
    return stamp.is_file() and json.loads(stamp.read_text()).get("cmd") == shown(job.cmd)


def resumed_command(work: Path, job: Job) -> list[str]:
    """``job``'s command, with ``--resume`` for ``--overwrite`` if that same command was started
    before, wrote ``checkpoints/last.pt`` in its output and did not finish."""
    started = started_path(work, job)
    last = job.out / "checkpoints" / "last.pt"
    if "--overwrite" in job.cmd and last.is_file() and started.is_file() and started.read_text() == shown(job.cmd):
        return ["--resume" if c == "--overwrite" else c for c in job.cmd]
    return list(job.cmd)


class Children:
    """The job processes a runner has running. While active (in the main thread), SIGTERM to
    the runner is passed on to each of them, now and as they start, and recorded in ``signum``
    for the runner to stop starting jobs: a job whose runner is stopped by a batch system or
    ``kill`` does not go on running, unseen, into a rerun that would start it a second time."""

    def __init__(self) -> None:
        self.signum = 0
        self._procs: set[subprocess.Popen] = set()
        self._old = None

    def run(self, cmd: Sequence[str], **kwargs) -> int:
        """Run ``cmd`` (``subprocess.Popen`` arguments) to its end; its exit status."""
        with subprocess.Popen(cmd, **kwargs) as proc:
            self._procs.add(proc)
            if self.signum:  # the signal came while it started
                proc.send_signal(self.signum)
            try:
                return proc.wait()
            finally:
                self._procs.discard(proc)

    def _handle(self, signum: int, frame) -> None:
        self.signum = signum
        for proc in list(self._procs):
            proc.send_signal(signum)

    def __enter__(self) -> "Children":
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def run_one(job: Job, work: Path, threads: int = 0, children: Children | None = None) -> float:
    """Run ``job`` (:func:`resumed_command`), its output in ``WORK/logs``, as one of ``children``
    (a :class:`Children` of its own if None); write its stamp; returns wall seconds.
    ``threads`` > 0: the job's ``OMP_NUM_THREADS`` unless the
    environment sets it (a job of ``parallel`` side by side gets its share of the cores, not
    all of them each: 2 jobs x 2 threads on 2 cores would contend).

    Raises:
        RunError: the command failed (the message names the job and its log).
    """
    log = work / "logs" / f"{_name(job)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd, started = resumed_command(work, job), started_path(work, job)
    for folder in (started.parent, job.out.parent):  # a command writes its output, not the folders above it
        folder.mkdir(parents=True, exist_ok=True)
    started.write_text(shown(job.cmd))
    t0 = time.perf_counter()
    with open(log, "a" if cmd != job.cmd else "w") as f:
        f.write(f"$ {shown(cmd)}\n")
        f.flush()
        rc = (children or Children()).run(cmd, stdout=f, stderr=subprocess.STDOUT, env=job_env(threads))
    wall = time.perf_counter() - t0
    if rc:
        raise RunError(f"{job.key}: command failed (exit {rc}); see {log}")
    stamp = stamp_path(work, job)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"cmd": shown(job.cmd), "wall_s": wall}))
    return wall


def job_env(threads: int = 0) -> dict[str, str]:
    """The environment of a job: this one, unbuffered output, and ``OMP_NUM_THREADS=threads``
    if ``threads`` > 0 and the environment does not set it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if threads > 0:
        env.setdefault("OMP_NUM_THREADS", str(threads))
    return env


def run_jobs(jobs: Sequence[Job], work: Path, parallel: int = 1, force: bool = False,
             echo: Callable[[str], None] = print) -> dict[str, float]:
    """Run the unfinished ``jobs`` (all with ``force``); returns wall seconds per job run.

    A dependency that is not among ``jobs`` counts as done (run by an earlier call).

    Raises:
        RunError: a command failed (after the running ones end), jobs wait on each other, or
            SIGTERM stopped the runner (after passing it on to the running jobs and waiting for them).
    """
    keys = {j.key for j in jobs}
    threads = max(1, (os.cpu_count() or 1) // parallel) if parallel > 1 else 0  # each job's share of the cores
    done = {j.key for j in jobs if not force and is_done(work, j)}
    if done:
        echo(f"  {len(done)} of {len(jobs)} jobs already done, skipped")
    waiting, running, wall, error = [j for j in jobs if j.key not in done], {}, {}, None
    with Children() as children, ThreadPoolExecutor(max(parallel, 1)) as pool:
        while (waiting and error is None and not children.signum) or running:
            for job in list(waiting) if error is None and not children.signum else []:
                if len(running) >= max(parallel, 1):
                    break
                if all(d in done or d in wall or d not in keys for d in job.deps):
                    waiting.remove(job)
                    running[pool.submit(run_one, job, work, threads, children)] = job
            if not running:
                raise RunError(f"jobs wait on jobs that never ran: {', '.join(j.key for j in waiting)}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = running.pop(fut)
                try:
                    wall[job.key] = fut.result()
                    echo(f"  {wall[job.key]:7.1f} s  {job.key}")
                except RunError as e:
                    error = error or e
    if children.signum:
        raise RunError(f"stopped by {signal.Signals(children.signum).name} (passed on to the jobs it was running); "
                       "the same command goes on from there (a training run from its last checkpoint)")
    if error is not None:
        raise error
    return wall


def run_plan(jobs: Sequence[Job], work: Path, parallel: int = 1, stages: Sequence[str] = STAGES, force: bool = False,
             echo: Callable[[str], None] = print) -> dict[str, float]:
    """Run ``stages`` of a plan's jobs in order: simulations side by side, one preprocessing at a
    time (each uses its own workers), then training and evaluation ``parallel`` at once."""
    work.mkdir(parents=True, exist_ok=True)
    wall = {}
    for stage in (s for s in STAGES if s in stages):
        batch = [j for j in jobs if j.stage == stage]
        echo(f"[{stage}] {len(batch)} jobs")
        if stage == "data":
            sims = [j for j in batch if j.cached]
            wall |= run_jobs(sims, work, max(len(sims), 1), force, echo)
            wall |= run_jobs([j for j in batch if not j.cached], work, 1, force, echo)
        else:
            wall |= run_jobs(batch, work, parallel, force, echo)
    return wall


def run_or_print(jobs: Sequence[Job], work: Path, parallel: int, dry_run: bool, echo: Callable[[str], None] = print) -> bool:
    """A study script's run: every stage of ``jobs`` (:func:`run_plan`), or with ``dry_run``
    only their commands printed; whether it ran."""
    if dry_run:
        echo("\n".join(shown(j.cmd) for j in jobs))
        return False
    run_plan(jobs, work, parallel, echo=echo)
    return True
