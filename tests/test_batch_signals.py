"""Stopping a batch stops its jobs: SIGTERM of ``closekit batch`` mid-batch ends every papermill process, kernel and
kernel child and marks the jobs interrupted (a rerun runs them again); kill -9 of it takes papermill and the kernel
along, and a rerun stops what they left before running the job, alone; a job directory locked by another runner is
not run twice."""
import fcntl
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from closekit import batch, jobs

ROOT = Path(__file__).resolve().parents[1]
JOB_NB = Path(__file__).parent / "notebooks" / "job.ipynb"
HUNG_TIMEOUT = 25  # s: long enough for a loaded machine's kernel to reach the hung cell


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_sigterm_ends_every_job_process_and_marks_them_interrupted(tmp_path):
    p1, p2 = tmp_path / "sleep.yaml", tmp_path / "sleep2.yaml"
    p1.write_text("mode: sleep\n")
    p2.write_text("mode: sleep\nvalue: 2\n")
    out = tmp_path / "out"
    runner = subprocess.Popen([sys.executable, "-m", "closekit.cli", "batch", str(JOB_NB), str(p1), str(p2), "--out",
                               str(out), "--cpu-slots", "2", "--no-html", "--kernel", batch.ensure_kernel()],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while len(list(out.glob("*/pids.txt"))) < 2 and time.time() < deadline and runner.poll() is None:
        time.sleep(0.3)
    assert len(list(out.glob("*/pids.txt"))) == 2, runner.communicate(timeout=5)[0]
    procs = psutil.Process(runner.pid).children(recursive=True)          # papermill x2 and what they started
    pids = {p.pid for p in procs} | {int(x) for f in out.glob("*/pids.txt") for x in f.read_text().split()}
    assert len(pids) >= 6                                                # 2 x (papermill, kernel, sleep)
    runner.send_signal(signal.SIGTERM)
    text = runner.communicate(timeout=60)[0]
    assert runner.returncode == 130, text
    assert [pid for pid in pids if not _gone(pid)] == []
    for d in (x for x in out.iterdir() if x.is_dir()):
        st = json.loads((d / "status.json").read_text())
        assert st["state"] == "interrupted" and "a rerun resumes it" in st["error"], st
    assert not any(jobs.finished(j, JOB_NB) for j in jobs.make_jobs(JOB_NB, [p1, p2], out))   # a rerun runs them


@pytest.mark.slow
def test_a_locked_job_directory_is_not_run_twice(tmp_path):
    p = tmp_path / "ok.yaml"
    p.write_text("mode: ok\nvalue: 3\n")
    out = tmp_path / "out"
    (job,) = jobs.make_jobs(JOB_NB, [p], out.resolve())
    job["dir"].mkdir(parents=True)
    with open(job["dir"] / ".lock", "a") as other:                      # another runner holds the job
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rows = batch.run_batch(JOB_NB, [p], out, log=lambda *_: None, html=False)
        assert rows["state"].tolist() == ["locked"] and "another closekit batch" in rows["error"][0]
        assert not (job["dir"] / "status.json").exists() and not (job["dir"] / "params.yaml").exists()
    rows = batch.run_batch(JOB_NB, [p], out, log=lambda *_: None, html=False)
    assert rows["state"].tolist() == ["ok"]


def _wait(cond, seconds):
    deadline = time.time() + seconds
    while not cond() and time.time() < deadline:
        time.sleep(0.3)
    return cond()


@pytest.mark.slow
def test_kill_9_of_the_runner_ends_the_job_and_a_rerun_stops_its_leftovers_first(tmp_path):
    p = tmp_path / "sleep.yaml"
    p.write_text("mode: sleep\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "closekit.cli", "batch", str(JOB_NB), str(p), "--out", str(out), "--no-html",
           "--timeout", str(HUNG_TIMEOUT), "--kernel", batch.ensure_kernel()]
    runner = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert _wait(lambda: len(list(out.glob("*/pids.txt"))) == 1 or runner.poll() is not None, 120)
    (d,) = [x.parent for x in out.glob("*/pids.txt")]
    (papermill,) = psutil.Process(runner.pid).children()
    kernel_pid, child_pid = map(int, (d / "pids.txt").read_text().split())
    runner.kill()
    runner.communicate()
    assert _wait(lambda: _gone(papermill.pid) and _gone(kernel_pid), 15)    # they die with their runner
    (d / "pids.txt").unlink()
    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=HUNG_TIMEOUT + 120)
    lines = rerun.stdout.splitlines()
    stopped = [i for i, x in enumerate(lines) if "left running by a killed runner (pid " f"{runner.pid} " in x]
    started = [i for i, x in enumerate(lines) if x == f"{d.name}: start (CUDA_VISIBLE_DEVICES='')"]
    assert stopped and started and stopped[0] < started[0], rerun.stdout     # what was left stopped first
    assert _gone(child_pid)
    assert json.loads((d / "status.json").read_text())["state"] == "timed_out"   # ran once more, alone
    for log in ("stdout.log", "stderr.log", "papermill.log"):
        assert b"\0" not in (d / log).read_bytes()
