"""graphevent.studies.runner: jobs run once their dependencies are done; finished ones are skipped."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time

import pytest

from graphevent.errors import ConfigError, RunError
from graphevent.studies.plan import Job
from graphevent.studies.runner import ROOT, add_study_options, only, run_jobs, run_plan, shown, stamp_path, study_argv


def writer(tmp_path, key: str, text: str, deps=(), stage="finetune") -> Job:
    """A job that appends ``text`` to ``order.txt`` and writes its output file."""
    out = tmp_path / f"{key}.out"
    code = f"open({str(tmp_path / 'order.txt')!r}, 'a').write({text!r}); open({str(out)!r}, 'w').write('done')"
    return Job(key, stage, [sys.executable, "-c", code], out, list(deps))


def test_dependencies_order_and_a_rerun_skips_finished_jobs(tmp_path):
    jobs = [writer(tmp_path, "b", "b", deps=["a"]), writer(tmp_path, "a", "a"), writer(tmp_path, "c", "c", deps=["b"])]
    said = []
    wall = run_jobs(jobs, tmp_path, parallel=3, echo=said.append)
    assert (tmp_path / "order.txt").read_text() == "abc" and set(wall) == {"a", "b", "c"}
    assert json.loads(stamp_path(tmp_path, jobs[0]).read_text())["cmd"] == shown(jobs[0].cmd)
    assert (tmp_path / "logs/a.log").read_text().startswith("$ ")
    said.clear()
    assert run_jobs(jobs, tmp_path, parallel=3, echo=said.append) == {}
    assert said == ["  3 of 3 jobs already done, skipped"] and (tmp_path / "order.txt").read_text() == "abc"


def test_a_changed_command_or_a_missing_output_runs_again(tmp_path):
    a, b = writer(tmp_path, "a", "a"), writer(tmp_path, "b", "b")
    run_jobs([a, b], tmp_path, echo=lambda s: None)
    b.out.unlink()
    a2 = writer(tmp_path, "a", "A")  # same key and output, other command
    assert set(run_jobs([a2, b], tmp_path, echo=lambda s: None)) == {"a", "b"}
    assert (tmp_path / "order.txt").read_text() == "abAb"
    assert set(run_jobs([a2, b], tmp_path, force=True, echo=lambda s: None)) == {"a", "b"}


def test_a_cached_job_needs_only_its_output(tmp_path):
    sim = Job("simulate x", "data", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "x.h5", cached=True)
    sim.out.write_text("made elsewhere")
    assert run_plan([sim], tmp_path, stages=["data"], echo=lambda s: None) == {}


def test_a_failed_job_names_its_log_and_its_dependants_do_not_run(tmp_path):
    bad = Job("pretrain gt", "pretrain", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "gt")
    after = writer(tmp_path, "ft", "x", deps=["pretrain gt"])
    with pytest.raises(RunError, match=rf"^pretrain gt: command failed \(exit 3\); see {tmp_path}/logs/pretrain_gt.log$"):
        run_jobs([bad, after], tmp_path, parallel=2, echo=lambda s: None)
    assert not (tmp_path / "order.txt").exists() and not stamp_path(tmp_path, bad).exists()
    with pytest.raises(RunError, match="^jobs wait on jobs that never ran: ft$"):
        run_jobs([writer(tmp_path, "ft", "x", deps=["ft"])], tmp_path, echo=lambda s: None)


def test_an_interrupted_training_run_resumes_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    code = (f"import sys, pathlib; d = pathlib.Path({str(out)!r}); (d / 'checkpoints').mkdir(parents=True, exist_ok=True); "
            f"open({str(tmp_path / 'argv.txt')!r}, 'a').write(sys.argv[1] + ' '); (d / 'checkpoints/last.pt').write_text('x'); "
            "raise SystemExit(0 if sys.argv[1] == '--resume' else 1)")
    job = Job("pn @ 1 seed 0", "finetune", [sys.executable, "-c", code, "--overwrite"], out)
    with pytest.raises(RunError, match="command failed"):  # stopped after writing a checkpoint
        run_jobs([job], tmp_path, echo=lambda s: None)
    assert set(run_jobs([job], tmp_path, echo=lambda s: None)) == {"pn @ 1 seed 0"}
    assert (tmp_path / "argv.txt").read_text() == "--overwrite --resume "
    assert json.loads(stamp_path(tmp_path, job).read_text())["cmd"] == shown(job.cmd)  # stamped with the study's command
    log = (tmp_path / "logs/pn_@_1_seed_0.log").read_text().splitlines()
    assert log[0].endswith("--overwrite") and log[-1].endswith("--resume")
    other = Job(job.key, "finetune", job.cmd[:-1] + ["--overwrite", "--seed-changed"], out)  # another command starts afresh
    with pytest.raises(RunError):
        run_jobs([other], tmp_path, echo=lambda s: None)
    assert (tmp_path / "argv.txt").read_text().endswith("--resume --overwrite ")


def test_the_command_a_study_shows_leaves_out_how_it_ran():
    argv = ["--size", "cpu", "--part", "report", "--seeds", "3", "--note", "busy machine", "--force", "--part=finetune",
            "--dry-run", "--note=x", "--gpus", "2"]
    assert study_argv(argv) == ["--size", "cpu", "--seeds", "3", "--gpus", "2"]


def test_the_options_every_study_takes():
    ap = argparse.ArgumentParser()
    add_study_options(ap, "runs/x_<size>")
    args = ap.parse_args(["--gpus", "2", "--train-set", "a=1", "--train-set", "b=2", "--dry-run"])
    assert (args.gpus, args.parallel, args.workers, args.train_set, args.dry_run, args.note, args.workdir) == (
        2, 1, 2, ["a=1", "b=2"], True, None, None)
    assert args.results == ROOT / "docs/results.md"
    assert "default: runs/x_<size>" in ap.format_help()


@pytest.mark.parametrize("script", ["study_events.py", "study_label_efficiency.py"])
def test_both_study_scripts_take_them(script):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for option in ("--gpus", "--parallel", "--workers", "--train-set", "--cache", "--workdir", "--results", "--note", "--dry-run"):
        assert f"{option} " in r.stdout


def test_jobs_side_by_side_share_the_cores_unless_the_environment_says(tmp_path, monkeypatch):
    import os

    from graphevent.studies.runner import job_env

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    code = "import os, sys; open(sys.argv[1], 'w').write(os.environ.get('OMP_NUM_THREADS', 'unset'))"
    jobs = [Job(f"j{i}", "finetune", [sys.executable, "-c", code, str(tmp_path / f"j{i}.out")], tmp_path / f"j{i}.out") for i in range(3)]
    run_jobs(jobs[:2], tmp_path, parallel=2, echo=lambda s: None)
    run_jobs(jobs[2:], tmp_path, parallel=1, echo=lambda s: None)
    assert [(tmp_path / f"j{i}.out").read_text() for i in range(3)] == ["4", "4", "unset"]
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert job_env(4)["OMP_NUM_THREADS"] == "3" and job_env(0)["PYTHONUNBUFFERED"] == "1"


def test_sigterm_to_the_runner_stops_its_running_jobs_and_starts_no_more(tmp_path):
    """A runner stopped by ``kill`` (or a batch system's time limit) must not leave its jobs running
    unseen: a rerun would start them a second time, writing the same output."""
    job = ("import pathlib, signal, sys, time; k = sys.argv[1]; d = pathlib.Path(sys.argv[2]); "
           "signal.signal(signal.SIGTERM, lambda *a: ((d / f'term-{k}').write_text('x'), sys.exit(5))); "
           "(d / f'started-{k}').write_text('x'); time.sleep(120)")
    runner = (
        "import sys, pathlib\n"
        "from graphevent.errors import RunError\n"
        "from graphevent.studies.plan import Job\n"
        "from graphevent.studies.runner import run_jobs\n"
        f"d = pathlib.Path({str(tmp_path)!r})\n"
        f"jobs = [Job(k, 'finetune', [sys.executable, '-c', {job!r}, k, str(d)], d / k) for k in 'abc']\n"
        "try:\n"
        "    run_jobs(jobs, d, parallel=2, echo=print)\n"
        "except RunError as e:\n"
        "    sys.exit(f'error: {e}')\n")
    proc = subprocess.Popen([sys.executable, "-c", runner], stderr=subprocess.PIPE, text=True)
    for _ in range(1200):  # both side-by-side jobs started (up to 120 s on a loaded machine)
        if (tmp_path / "started-a").exists() and (tmp_path / "started-b").exists():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.strip() == ("error: stopped by SIGTERM (passed on to the jobs it was running); "
                           "the same command goes on from there (a training run from its last checkpoint)")
    assert sorted(p.name for p in tmp_path.glob("term-*")) == ["term-a", "term-b"]
    assert not (tmp_path / "started-c").exists() and not list((tmp_path / "stamps").glob("*.json"))


def test_only_keeps_the_matched_jobs_and_all_they_need_in_plan_order(tmp_path):
    def job(key, stage, *deps):
        return Job(key, stage, ["true"], tmp_path / key, list(deps))

    plan = [job("simulate a", "data"), job("preprocess a", "data", "simulate a"), job("pretrain gt", "pretrain", "preprocess a"),
            job("pretrain ec", "pretrain", "preprocess a")]
    for s in range(3):
        plan += [job(f"pn @ 0.01 seed {s}", "finetune", "preprocess a"),
                 job(f"mt @ 0.01 seed {s}", "finetune", "preprocess a", "pretrain gt"),
                 job(f"eval 0.01 seed {s}", "eval", f"pn @ 0.01 seed {s}", f"mt @ 0.01 seed {s}")]
    keys = lambda js: [j.key for j in js]  # noqa: E731
    assert keys(only(plan, ["pn @ 0.01 seed [12]"])) == ["simulate a", "preprocess a", "pn @ 0.01 seed 1", "pn @ 0.01 seed 2"]
    assert keys(only(plan, ["mt @ 0.01 seed 2"])) == ["simulate a", "preprocess a", "pretrain gt", "mt @ 0.01 seed 2"]
    assert keys(only(plan, ["eval 0.01 seed 0", "pn @ *"])) == [
        "simulate a", "preprocess a", "pretrain gt", "pn @ 0.01 seed 0", "mt @ 0.01 seed 0", "eval 0.01 seed 0",
        "pn @ 0.01 seed 1", "pn @ 0.01 seed 2"]
    with pytest.raises(ConfigError, match=r"^--only 'PN @ \*': matches no job of the study; expected keys like "
                                          r"'simulate a', 'pretrain gt', 'pn @ 0.01 seed 0', 'eval 0.01 seed 0'$"):
        only(plan, ["pn @ 0.01 seed 0", "PN @ *"])
