"""The SLURM engine of closekit batch against a real one-node SLURM cluster with two fake GPUs (tests/slurm_cluster.py):
ok jobs, a failing job and a timing-out job run as one array; the others finish, every job ran on one of
the two GPUs and jobs running at the same time had different GPUs; a rerun skips finished jobs without submitting;
--status reads the job directories; Ctrl-C of the runner cancels the array and its kernels. All slow; the sbatch text
itself is checked without a cluster in tests/test_batch.py."""
import json
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from closekit import batch, cli, procs, slurm
from slurm_cluster import cluster_fixture, require_cluster

require_cluster()   # else one skip line: why, and how to run these tests
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 20
CELLS = [  # a light job notebook (no torch import: kernels start in seconds on a loaded 2-core machine)
    ("parameters", 'mode = "ok"  # ok | fail | sleep\nvalue = 1.0  # written doubled to results.json'),
    (None, "import json, os, subprocess, time\n"
           "print('job sees CUDA_VISIBLE_DEVICES', os.environ.get('CUDA_VISIBLE_DEVICES'))\n"
           "if mode == 'fail':\n    raise ValueError(f'boom {value}')\n"
           "if mode == 'sleep':\n    child = subprocess.Popen(['sleep', '300'])\n"
           "    open('pids.txt', 'w').write(f'{os.getpid()} {child.pid}')\n    time.sleep(300)\n"
           "json.dump({'doubled': 2 * value, 'gpu': os.environ.get('CUDA_VISIBLE_DEVICES')}, open('results.json', 'w'))"),
]


@pytest.fixture(scope="module")
def job_nb(tmp_path_factory):
    import nbformat
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": [tag]} if tag else {}) for tag, src in CELLS]
    path = tmp_path_factory.mktemp("nb") / "job.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from cluster_fixture(tmp_path_factory, gpus=2, cpus=2)


def _params(tmp, **jobs):
    out = {}
    for name, text in jobs.items():
        out[name] = tmp / f"{name}.yaml"
        out[name].write_text(text)
    return out


def _status(d):
    return json.loads((d / "status.json").read_text())


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def array(cluster, job_nb, tmp_path_factory):
    """ok x 2, fail and sleep (past the timeout) as one array, 1 GPU per job, 2 at a time."""
    kernel = batch.ensure_kernel()
    tmp = tmp_path_factory.mktemp("slurm-batch")
    p = _params(tmp, ok1="value: 1\n", ok2="value: 2\n", fail="mode: fail\nvalue: 4\n", sleep="mode: sleep\n")
    out, logs = tmp / "out", []
    t0 = time.time()
    summary = batch.run_batch(job_nb, list(p.values()), out, timeout=TIMEOUT, kernel=kernel, log=logs.append,
                              engine="slurm", slurm=dict(partition=cluster.partition, gpus_per_job=1, max_parallel=2))
    seconds = time.time() - t0
    jobs = {d.name.rsplit("-", 1)[0]: d for d in out.iterdir() if d.is_dir() and not d.name.startswith(".")}
    print(f"SLURM array of {len(jobs)} jobs: {seconds:.1f} s")
    return dict(tmp=tmp, p=p, out=out, summary=summary.set_index("job"), jobs=jobs, logs=logs, seconds=seconds,
                kernel=kernel, nb=job_nb)


def test_one_array_runs_every_job_failures_do_not_stop_others(array):
    jobs, summary = array["jobs"], array["summary"]
    states = {name: _status(d)["state"] for name, d in jobs.items()}
    assert states == {"ok1": "ok", "ok2": "ok", "fail": "failed", "sleep": "timed_out"}, array["logs"]
    assert summary.loc[jobs["fail"].name, "error"] == "ValueError: boom 4"
    assert summary.loc[jobs["sleep"].name, "error"] == f"wall-clock timeout after {TIMEOUT} s"
    for v in (1, 2):
        d = jobs[f"ok{v}"]
        assert json.loads((d / "results.json").read_text())["doubled"] == 2 * v
        assert (d / "job.html").exists() and _status(d)["html"] == "job.html"
    array_ids = {_status(d)["slurm_job_id"].split("_")[0] for d in jobs.values()}
    assert len(array_ids) == 1                                          # one array, one task per job
    assert sorted(int(_status(d)["slurm_job_id"].split("_")[1]) for d in jobs.values()) == list(range(4))
    assert any("submitted SLURM array" in x for x in array["logs"])


def test_the_timed_out_kernel_was_killed(array):
    d = array["jobs"]["sleep"]
    kernel_pid, child_pid = map(int, (d / "pids.txt").read_text().split())
    assert _gone(kernel_pid) and _gone(child_pid)
    assert _status(d)["seconds"] < TIMEOUT + procs.GRACE + 5


def test_gpu_assignment(array):
    """Each task got one of the two fake GPUs from SLURM; tasks running at the same time never shared one."""
    runs = []
    for d in array["jobs"].values():
        st = _status(d)
        assert st["cuda_visible_devices"] in ("0", "1"), st
        assert f"job sees CUDA_VISIBLE_DEVICES {st['cuda_visible_devices']}" in (d / "stdout.log").read_text()
        runs.append((datetime.fromisoformat(st["start"]), datetime.fromisoformat(st["end"]),
                     st["cuda_visible_devices"]))
    assert {g for *_, g in runs} == {"0", "1"}
    overlapping = [(a, b) for i, a in enumerate(runs) for b in runs[i + 1:] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping                                        # two at a time did run
    assert all(a[2] != b[2] for a, b in overlapping)
    assert len(overlapping) <= len(runs)                      # never three at once on two GPUs (pairs chain)


def test_rerun_skips_finished_jobs_without_submitting(array, cluster):
    before = set((array["out"] / ".slurm").iterdir())
    t0 = time.time()
    again = batch.run_batch(array["nb"], [array["p"][k] for k in ("ok1", "ok2")], array["out"],
                            kernel=array["kernel"], log=lambda *_: None, engine="slurm",
                            slurm=dict(partition=cluster.partition))
    assert again["state"].tolist() == ["skipped"] * 2 and time.time() - t0 < 5
    assert set((array["out"] / ".slurm").iterdir()) == before


def test_status_reads_the_job_directories(array, capsys):
    assert cli.main(["batch", "--status", str(array["out"])]) == 0
    out = capsys.readouterr().out
    for name, d in array["jobs"].items():
        line = next(x for x in out.splitlines() if x.strip().startswith(d.name))
        assert _status(d)["state"] in line
    assert cli.main(["batch", "--status", str(array["tmp"] / "nope")]) == 2


def test_ctrl_c_cancels_the_array_and_its_kernels(cluster, job_nb, tmp_path):
    p = _params(tmp_path, sleep="mode: sleep\n", sleep2="mode: sleep\nvalue: 2\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "closekit.cli", "batch", str(job_nb), str(p["sleep"]), str(p["sleep2"]),
           "--out", str(out), "--engine", "slurm", "--partition", cluster.partition, "--gpus-per-job", "1",
           "--timeout", "300", "--kernel", batch.ensure_kernel(), "--no-html"]
    # SIGINT at its default, as in a terminal: a suite started in the background (`cmd &`) inherits it ignored, and
    # Python then raises no KeyboardInterrupt
    runner = subprocess.Popen(cmd, cwd=ROOT, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    pids_files = lambda: [d / "pids.txt" for d in out.glob("sleep*") if (d / "pids.txt").exists()]  # noqa: E731
    deadline = time.time() + 90
    while len(pids_files()) < 2 and time.time() < deadline and runner.poll() is None:
        time.sleep(0.5)
    assert len(pids_files()) == 2, runner.communicate(timeout=5)[0] if runner.poll() is not None else "no kernels"
    pids = [int(x) for f in pids_files() for x in f.read_text().split()]
    runner.send_signal(signal.SIGINT)
    text = runner.communicate(timeout=slurm.CANCEL_WAIT + 30)[0]        # it waits up to CANCEL_WAIT for the queue
    assert runner.returncode != 0 and "scancel" in text, text
    for _ in range(60):                                       # slurmd kills the tasks' processes (KillWait 5 s)
        if all(_gone(pid) for pid in pids) and not cluster.run("squeue", "-h").stdout.strip():
            break
        time.sleep(0.5)
    assert all(_gone(pid) for pid in pids) and not cluster.run("squeue", "-h").stdout.strip()
    assert {_status(d)["state"] for d in out.glob("sleep*")} == {"cancelled"}


def test_an_unknown_partition_is_one_line_before_any_work(cluster, job_nb, tmp_path, capsys):
    (tmp_path / "ok.yaml").write_text("value: 1\n")
    out = tmp_path / "out"
    assert cli.main(["batch", str(job_nb), str(tmp_path / "ok.yaml"), "--out", str(out), "--engine", "slurm",
                     "--partition", "nope"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "closekit batch: error: --partition nope: no such SLURM partition; sinfo lists them"]
    assert not out.exists()
