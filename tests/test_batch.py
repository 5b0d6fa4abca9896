"""closekit.batch on a tiny notebook: ok, failing, dead-kernel, hung and progress-reporting jobs; rerun skips; HTML
reports; closekit.progress; bad options refused in one line before any work; two runners' summaries."""
import fcntl
import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import psutil
import pytest

from closekit import batch, cli, jobs as joblib, procs, progress, slurm
from closekit.config import parse_overrides
from closekit.record import read_results

JOB_NB = Path(__file__).parent / "notebooks" / "job.ipynb"
HUNG_TIMEOUT = 25  # s: papermill + kernel start took 14-18 s on a loaded 2-core machine; the hung cell must be reached


def _params(tmp, **jobs):
    """One YAML params file per job name."""
    paths = {}
    for name, text in jobs.items():
        paths[name] = tmp / f"{name}.yaml"
        paths[name].write_text(text)
    return paths


def _gone(pid):
    """True when ``pid`` no longer runs (a zombie waiting for a reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run the batches once: ok + failing + dead kernel + progress on two CPU slots, then a hung job with a short
    timeout (long enough for its kernel to reach the hung cell)."""
    kernel = batch.ensure_kernel()
    tmp = tmp_path_factory.mktemp("batch")
    p = _params(tmp, ok="mode: ok\nvalue: 2.5\n", fail="mode: fail\nvalue: 4\n", die="mode: die\n",
                sleep="mode: sleep\n", progress="mode: progress\n")
    out, logs = tmp / "out", []
    old_delay, joblib.RETRY_DELAY = joblib.RETRY_DELAY, 0.2
    try:
        main = batch.run_batch(JOB_NB, [p["ok"], p["fail"], p["die"], p["progress"]], out, cpu_slots=2,
                               timeout=120, kernel=kernel, log=logs.append, progress_every=0)
        hung = batch.run_batch(JOB_NB, [p["sleep"]], out, timeout=HUNG_TIMEOUT, kernel=kernel, log=logs.append)
    finally:
        joblib.RETRY_DELAY = old_delay
    jobs = {d.name.split("-")[0]: d for d in out.iterdir() if d.is_dir()}
    return dict(tmp=tmp, p=p, out=out, main=main.set_index("job"), hung=hung, jobs=jobs, logs=logs)


def _status(d):
    return json.loads((d / "status.json").read_text())


@pytest.mark.slow
def test_job_layout_and_ok_state(runs):
    d = runs["jobs"]["ok"]
    assert d.name == f"ok-{joblib.params_hash({'mode': 'ok', 'value': 2.5})[:8]}"
    names = {f.name for f in d.iterdir()}
    assert {"params.yaml", "job.ipynb", "stdout.log", "stderr.log", "status.json", "results.json", "job.html"} <= names
    st = _status(d)
    assert st["state"] == "ok" and st["attempts"] == 1 and st["error"] is None and st["seconds"] > 0
    assert st["params_hash"] == joblib.params_hash({"mode": "ok", "value": 2.5})
    assert json.loads((d / "results.json").read_text())["doubled"] == 5.0
    # two CPU slots split the cores: each job's torch / OpenMP thread count (unless the caller set one)
    expected = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // 2))
    assert f"OMP_NUM_THREADS {expected}" in (d / "stdout.log").read_text()
    assert "job printed ok 2.5" in (d / "stdout.log").read_text()


@pytest.mark.slow
def test_failing_job_does_not_stop_the_others(runs):
    main = runs["main"]
    st = _status(runs["jobs"]["fail"])
    assert st["state"] == "failed" and st["error"] == "ValueError: boom 4"
    assert main.loc[runs["jobs"]["fail"].name, "error"] == "ValueError: boom 4"
    assert main.loc[runs["jobs"]["ok"].name, "state"] == "ok"
    assert not (runs["jobs"]["fail"] / "job.html").exists()


@pytest.mark.slow
def test_dead_kernel_is_retried_once(runs):
    st = _status(runs["jobs"]["die"])
    assert st["state"] == "dead_kernel" and st["attempts"] == 2 and st["returncode"] == joblib.DEAD_KERNEL


@pytest.mark.slow
def test_timeout_kills_papermill_kernel_and_its_children(runs):
    d = runs["jobs"]["sleep"]
    st = _status(d)
    assert st["state"] == "timed_out" and st["seconds"] < HUNG_TIMEOUT + procs.GRACE + 3
    assert runs["hung"]["state"].tolist() == ["timed_out"]
    kernel_pid, child_pid = map(int, (d / "pids.txt").read_text().split())
    assert _gone(kernel_pid) and _gone(child_pid)  # the kernel runs in its own session: killed explicitly


@pytest.mark.slow
def test_html_report_has_outputs_but_no_input(runs):
    html = (runs["jobs"]["ok"] / "job.html").read_text()
    assert "job printed ok 2.5" in html
    assert "source-marker-7f3a" not in html and "raise ValueError" not in html
    assert _status(runs["jobs"]["ok"])["html"] == "job.html"


@pytest.mark.slow
def test_rerun_skips_finished_jobs(runs):
    d = runs["jobs"]["ok"]
    before = (d / "status.json").read_bytes(), (d / "job.ipynb").stat().st_mtime_ns
    t0 = time.time()
    again = batch.run_batch(JOB_NB, [runs["p"]["ok"]], runs["out"], log=lambda *a: None)
    assert time.time() - t0 < 5
    assert again["state"].tolist() == ["skipped"] and again["attempts"].tolist() == [0]
    assert ((d / "status.json").read_bytes(), (d / "job.ipynb").stat().st_mtime_ns) == before


@pytest.mark.slow
def test_changed_notebook_or_rerun_runs_again(tmp_path):
    """A finished job reruns when its notebook changed since, or with rerun=True; otherwise it is skipped."""
    nb, quiet = tmp_path / "job.ipynb", dict(log=lambda *a: None, html=False)
    nb.write_bytes(JOB_NB.read_bytes())
    p = _params(tmp_path, ok="mode: ok\nvalue: 1\n")["ok"]
    states = lambda **kw: batch.run_batch(nb, [p], tmp_path / "out", **quiet, **kw)["state"].tolist()
    assert states() == ["ok"] and states() == ["skipped"]
    book = json.loads(nb.read_text())
    book["metadata"]["edited"] = True
    nb.write_text(json.dumps(book))
    assert states() == ["ok"] and states() == ["skipped"]
    assert states(rerun=True) == ["ok"]


def test_unknown_parameter_refused_before_any_job(tmp_path):
    p = _params(tmp_path, good="mode: ok\n", typo="mode: ok\nvalu: 2\n")
    with pytest.raises(ValueError, match=r"typo\.yaml: unknown parameter\(s\) 'valu'.*known: mode, value"):
        batch.run_batch(JOB_NB, [p["good"], p["typo"]], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_params_file_means_to_batch_what_it_means_to_closekit_train(tmp_path):
    """YAML 1.2 floats (1e-3, not the string YAML 1.1 reads) and dates kept as text, whichever command reads it."""
    from closekit.config import RunConfig
    p = _params(tmp_path, lr="space: nb201\nlr: 1e-3\nweight_decay: 5e-05\n")["lr"]
    nb = Path(__file__).parents[1] / "notebooks" / "nb201.ipynb"
    (job,) = joblib.make_jobs(nb, [p], tmp_path / "out")
    cfg = RunConfig.from_yaml(p)
    assert (job["params"]["lr"], job["params"]["weight_decay"]) == (cfg.lr, cfg.weight_decay) == (1e-3, 5e-05)
    assert joblib.load_params(_params(tmp_path, d="when: 2026-12-06\n")["d"]) == ("d", {"when": "2026-12-06"})


@pytest.mark.slow
def test_read_results_over_batch_dir(runs):
    df = read_results(runs["out"]).set_index("mode")
    assert list(df.columns[:2]) == ["value", "stage"]
    assert df.loc["ok", "doubled"] == 5.0 and df.loc["ok", "status"] == "ok"
    assert df.loc["fail", "status"] == "failed" and df.loc["sleep", "status"] == "timed_out"


@pytest.mark.slow
def test_main_cli(runs, tmp_path, capsys):
    assert cli.main(["batch", str(JOB_NB), str(runs["p"]["ok"]), "--out", str(runs["out"])]) == 0
    assert "skipped" in capsys.readouterr().out
    bad = _params(tmp_path, bad="nope: 1\n")["bad"]
    assert cli.main(["batch", str(JOB_NB), str(bad), "--out", str(tmp_path / "o")]) == 2


@pytest.mark.slow
def test_progress_of_a_running_job_in_log_and_status(runs):
    d = runs["jobs"]["progress"]
    lines = [x for x in runs["logs"] if x.startswith(d.name + ": ")]
    shown = [x.split(": ", 1)[1].rsplit(" (", 1)[0] for x in lines[1:-1]]  # between "start" and "ok in ..."
    assert shown == ["train 1/3", "train 2/3", "train 3/3", "done"], lines
    assert all(x.endswith(" s)") for x in lines[1:-1])
    # the notebook saw each step in status.json while it ran; the finished status keeps the last report
    assert json.loads((d / "results.json").read_text())["seen_in_status"] == [1, 2, 3]
    st = _status(d)
    assert st["state"] == "ok"
    assert {k: st["progress"][k] for k in ("phase", "done", "total")} == {"phase": "done", "done": None, "total": None}
    assert st["progress"] == progress.read(d / "progress.json") and isinstance(st["progress"]["time"], float)
    assert "progress" not in _status(runs["jobs"]["ok"])  # a job that does not report has none


def test_watcher_throttles_lines_but_not_status(tmp_path):
    """A new phase is logged at once, a change within the phase at most every ``every`` s, nothing unchanged."""
    status, logs = {"state": "running"}, []
    poll = joblib._watcher("j", tmp_path, status, logs.append, every=30, t0=100)
    put = lambda **p: (tmp_path / "progress.json").write_text(json.dumps({"done": None, "total": None, **p}))
    poll(now=101)
    assert logs == [] and "progress" not in status  # no progress.json yet
    put(phase="train", done=1, total=30)
    poll(now=105)
    put(phase="train", done=2, total=30)
    poll(now=110)
    assert logs == ["j: train 1/30 (5 s)"]
    assert json.loads((tmp_path / "status.json").read_text())["progress"]["done"] == 2  # status.json is current
    poll(now=120)
    poll(now=136)  # 31 s after the last line: what changed since is shown, once
    poll(now=170)
    put(phase="score", done=0, total=300)
    poll(now=171)
    put(phase="score", done=5, total=300)
    poll(now=172)
    poll(now=173, final=True)
    assert logs == ["j: train 1/30 (5 s)", "j: train 2/30 (36 s)", "j: score 0/300 (71 s)", "j: score 5/300 (73 s)"]
    logs.clear()
    poll = joblib._watcher("j", tmp_path, {}, logs.append, every=0, t0=0)
    for k in (1, 2, 2, 3):
        put(phase="train", done=k, total=3)
        poll(now=k)
    put(phase="rank")
    poll(now=4)
    assert logs == ["j: train 1/3 (1 s)", "j: train 2/3 (2 s)", "j: train 3/3 (3 s)", "j: rank (4 s)"]


def test_watcher_shows_the_end_of_a_phase_before_the_next(tmp_path):
    """A short phase's last step is shown when the next phase starts, though within ``every`` s of the last line."""
    logs = []
    poll = joblib._watcher("j", tmp_path, {}, logs.append, every=30, t0=0)
    for t, (phase, done, total) in enumerate([("train", 1, 3), ("train", 2, 3), ("train", 3, 3), ("score", 0, 9)], 1):
        (tmp_path / "progress.json").write_text(json.dumps({"phase": phase, "done": done, "total": total}))
        poll(now=t)
    assert logs == ["j: train 1/3 (1 s)", "j: train 3/3 (4 s)", "j: score 0/9 (4 s)"]


BAD = [  # arguments after NOTEBOOK PARAMS -> the one line (tmp: the test's directory; no GPU, no SLURM on PATH)
    (["--out", "{tmp}/afile"], "--out {tmp}/afile is a file; give a directory (new, or a batch directory to resume)"),
    (["--out", "{tmp}/afile/run"], "--out {tmp}/afile/run lies under the file {tmp}/afile; give a directory path"),
    (["--retries", "-1"], "--retries -1 must be an int >= 0 (0: no retry of a dead kernel)"),
    (["--timeout", "-1"], "--timeout -1 must be > 0 seconds; leave it out for no limit"),
    (["--progress-every", "-1"], "--progress-every -1 must be >= 0 seconds (0: every change)"),
    (["--cpu-slots", "0"], "--cpu-slots 0 must be >= 1"),
    (["--gpus", "0"], "--gpus 0: this machine has no CUDA GPU(s) ({tmp}/gpus), so no GPU 0; use --cpu-slots N "
                      "without a GPU"),
    (["--engine", "slurm", "--partition", "gpu"], "--engine slurm: sbatch, squeue, scancel, sinfo not found on PATH; "
     "run closekit batch on a SLURM login node (or install slurm-client), or use --engine local"),
    (["--slurm", "mem"], "--slurm expects KEY=VALUE, got 'mem' (e.g. --slurm lr=0.1)"),
    (["--gpus-per-job", "1", "--partition", "gpu"], "--partition, --gpus-per-job: SLURM option(s); add --engine slurm, "
     "or leave them out"),
]


@pytest.mark.parametrize("args, line", BAD, ids=[" ".join(a).replace("{tmp}/", "") for a, _ in BAD])
def test_bad_option_is_one_line_before_any_work(args, line, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(batch, "GPU_DIR", tmp_path / "gpus")          # a machine without CUDA
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))                # and without SLURM clients
    (tmp_path / "afile").write_text("")
    ok = _params(tmp_path, ok="mode: ok\n")["ok"]
    args = [a.format(tmp=tmp_path) for a in args] + ([] if "--out" in args else ["--out", str(tmp_path / "out")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cli.main(["batch", str(JOB_NB), str(ok), *args]) == 2
    assert capsys.readouterr().err.splitlines() == ["closekit batch: error: " + line.format(tmp=tmp_path)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "ok.yaml"]          # nothing written


def test_gpu_ids_are_checked_against_the_machines_gpus(tmp_path, monkeypatch):
    for bus in ("0000:01:00.0", "0000:02:00.0"):                         # the driver's entries of two GPUs
        (tmp_path / "gpus" / bus).mkdir(parents=True)
    monkeypatch.setattr(batch, "GPU_DIR", tmp_path / "gpus")
    assert batch.gpu_slots("0, 1") == ["0", "1"] and batch.gpu_slots([1]) == ["1"]
    with pytest.raises(ValueError, match=r"^--gpus 0,2: this machine has 2 CUDA GPU\(s\) \(.*\), so no GPU 2; "):
        batch.gpu_slots("0,2")


def test_a_non_notebook_is_one_line(tmp_path, capsys):
    ok = _params(tmp_path, ok="mode: ok\n")["ok"]
    (tmp_path / "broken.ipynb").write_text("{not json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                   # papermill's UserWarning: no more
        assert cli.main(["batch", str(ok), str(ok), "--out", str(tmp_path / "out")]) == 2
        assert cli.main(["batch", str(tmp_path / "broken.ipynb"), str(ok), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"closekit batch: error: notebook {ok} is not a .ipynb file; pass the notebook first, then the params YAML "
        "files",
        f"closekit batch: error: notebook {tmp_path / 'broken.ipynb'} cannot be read as a notebook "
        "(NotJSONError); pass a valid .ipynb file"]
    assert not (tmp_path / "out").exists()


def test_summary_of_two_runners_reads_each_jobs_status(tmp_path):
    """Runner A finds job x locked by runner B, which finishes x before A writes its summary; y finished earlier:
    A's summary (returned, summary.csv, printed) says x ok, never "locked", and prints no None."""
    p = _params(tmp_path, x="mode: ok\nvalue: 1\n", y="mode: ok\nvalue: 2\n")
    out = tmp_path / "out"
    x, y = joblib.make_jobs(JOB_NB, [p["x"], p["y"]], out.resolve())
    sha = hashlib.sha256(JOB_NB.read_bytes()).hexdigest()

    def finish(job, seconds):                                           # what a runner writes at a job's end
        job["dir"].mkdir(parents=True, exist_ok=True)
        (job["dir"] / "status.json").write_text(json.dumps(dict(
            job=job["id"], state="ok", params_hash=job["hash"], notebook_sha256=sha, seconds=seconds, attempts=1,
            error=None)))
    finish(y, 3.0)
    x["dir"].mkdir(parents=True)
    other = open(x["dir"] / ".lock", "a")
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)                   # runner B holds x
    logs = []

    def log(line):
        logs.append(line)
        if line.startswith(f"{x['id']}: locked"):                        # B finishes x while A goes on
            finish(x, 7.0)
            other.close()
    summary = batch.run_batch(JOB_NB, [p["x"], p["y"]], out, log=log, html=False, kernel=batch.ensure_kernel())
    assert summary.set_index("job")["state"].to_dict() == {x["id"]: "ok", y["id"]: "skipped"}
    assert summary.set_index("job")["seconds"].to_dict() == {x["id"]: 7.0, y["id"]: 3.0}
    assert (out / "summary.csv").read_text().splitlines()[1:] == [f"{x['id']},ok,7.0,1,", f"{y['id']},skipped,3.0,0,"]
    assert any("locked" in line for line in logs) and "None" not in logs[-1] and "locked" not in logs[-1]


def test_report_is_a_no_op_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert progress.report("train", 1, 3) is False
    assert list(tmp_path.iterdir()) == []


def test_report_is_rate_limited_atomic_and_best_effort(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(progress, "time", type("Clock", (), {"time": staticmethod(lambda: clock[0])}))
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.ENV, str(path))

    def report(t, *a, **kw):
        clock[0] = t
        return progress.report(*a, **kw)
    assert report(1000.0, "train", 1, 30, loss=0.5)
    assert progress.read(path) == {"phase": "train", "done": 1, "total": 30, "time": 1000.0, "loss": 0.5}
    assert not report(1000.5, "train", 2, 30)  # same phase within a second: skipped
    assert progress.read(path)["done"] == 1
    assert report(1001.0, "train", 3, 30)
    assert not report(1001.2, "train", 4, 30)
    assert report(1001.3, "train", 30, 30)  # done == total: always written
    assert report(1001.4, "score", 0, 300)  # a new phase: always written
    assert not report(1001.5, "score", 1, 300)
    assert progress.read(path) == {"phase": "score", "done": 0, "total": 300, "time": 1001.4}
    assert os.listdir(tmp_path) == ["progress.json"]  # no temp files left behind
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(progress.ENV, str(tmp_path / "a-file" / "progress.json"))
    assert report(1010.0, "rank") is False  # an OSError (its folder is a file) is swallowed


def test_read_of_missing_or_half_written_progress(tmp_path):
    assert progress.read(tmp_path / "nope.json") is None
    (tmp_path / "half.json").write_text('{"phase": "tr')
    assert progress.read(tmp_path / "half.json") is None
    (tmp_path / "list.json").write_text("[1, 2]")
    assert progress.read(tmp_path / "list.json") is None


def test_sbatch_options(tmp_path):
    """What the SLURM engine asks sbatch for: text only, no cluster and no srun needed."""
    params = slurm.parameters("gpu", gpus_per_job=2, max_parallel=3, time_min=slurm.time_limit(600, 1),
                              options=parse_overrides(["cpus_per_task=8", "mem=32G", "reservation=lab"], "--slurm"))
    text = slurm.sbatch_text(tmp_path, {**params, "map_count": 4})          # an array of 4, 3 at once
    for flag in ("--partition=gpu", "--gpus-per-node=2", "--cpus-per-task=8", "--mem=32G", "--reservation=lab",
                 "--time=26", "--job-name=closekit-batch", "--array=0-3%3"):
        assert f"#SBATCH {flag}\n" in text, (flag, text)
    assert slurm.time_limit(None, 1) == slurm.DAY and slurm.time_limit(60, 0) == 6
    with pytest.raises(ValueError, match="--slurm expects KEY=VALUE, got 'mem'"):
        parse_overrides(["mem"], "--slurm")
    assert "--gpus-per-node" not in slurm.sbatch_text(tmp_path, slurm.parameters("cpu", gpus_per_job=0))
