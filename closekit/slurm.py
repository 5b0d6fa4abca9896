"""The SLURM engine of ``closekit batch`` (CLOSE's studies beyond one machine): the jobs go out as one submitit job
array whose tasks run the local job function (``closekit.jobs.run_job``) in the output directory, on the cluster's
shared filesystem. Reruns skip finished jobs before submitting; job states come from the job directories, never from
sacct; Ctrl-C cancels the array and marks its unfinished jobs cancelled. submitit's files go to out_dir/.slurm/.
"""
import contextlib
import math
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from . import jobs as joblib
from .checkpoint import atomic_json

POLL = 2.0          # seconds between two looks at the array
LOST_AFTER = 3      # polls a task may be missing from squeue without a result before it counts as lost
CANCEL_WAIT = 60.0  # seconds Ctrl-C waits for the cancelled tasks to leave the queue (SLURM's KillWait)
DAY = 24 * 60       # SLURM minutes of a task without a timeout
START_MIN = 5       # SLURM minutes added to a task's limit for its start and HTML report
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo")


def _sh(*cmd):
    """Run a SLURM client; its CompletedProcess (text output)."""
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def check(partition=None, gpus_per_job=1, max_parallel=None, options=None):
    """Refuse, in one line and before any work, what the SLURM engine cannot run with."""
    gone = [c for c in CLIENTS if shutil.which(c) is None]
    if gone:
        raise ValueError(f"--engine slurm: {', '.join(gone)} not found on PATH; run closekit batch on a SLURM "
                         "login node (or install slurm-client), or use --engine local")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ValueError("--engine slurm needs submitit: pip install 'closekit[slurm]'") from None
    if not partition:
        raise ValueError("--engine slurm needs --partition NAME (sinfo lists them)")
    r = _sh("sinfo", "-h", "-p", partition, "-o", "%P")
    if r.returncode != 0:
        raise ValueError(f"--engine slurm: sinfo cannot reach a SLURM controller ({_last_line(r.stderr)}); run on a "
                         "SLURM login node (or set SLURM_CONF)")
    if not r.stdout.strip():
        raise ValueError(f"--partition {partition}: no such SLURM partition; sinfo lists them")
    if gpus_per_job is not None and gpus_per_job < 0:
        raise ValueError(f"--gpus-per-job {gpus_per_job} must be >= 0 (0: CPU only)")
    if max_parallel is not None and max_parallel < 1:
        raise ValueError(f"--max-parallel {max_parallel} must be >= 1 (leave it out for no limit)")


def time_limit(timeout, retries):
    """SLURM minutes of a task: every attempt's timeout, the retry delays and START_MIN; a DAY without a timeout."""
    if timeout is None:
        return DAY
    return int(math.ceil((timeout * (retries + 1) + joblib.RETRY_DELAY * retries) / 60)) + START_MIN


def parameters(partition, gpus_per_job=1, max_parallel=None, time_min=60, options=None):
    """submitit SlurmExecutor parameters; ``options`` it does not know go to sbatch as --key=value."""
    from submitit.slurm.slurm import _get_default_parameters
    params = dict(partition=partition, job_name="closekit-batch", time=time_min, stderr_to_stdout=True)
    if gpus_per_job:
        params["gpus_per_node"] = int(gpus_per_job)
    if max_parallel:
        params["array_parallelism"] = int(max_parallel)
    valid, extra = set(_get_default_parameters()), {}
    for k, v in (options or {}).items():
        k = k.replace("-", "_")
        if k in valid:
            params[k] = v
        else:
            extra[k.replace("_", "-")] = v
    if extra:
        params["additional_parameters"] = {**params.get("additional_parameters", {}), **extra}
    return params


def sbatch_text(folder, params):
    """The sbatch file submitit writes for ``params`` (no cluster needed)."""
    from submitit.slurm.slurm import _make_sbatch_string
    return _make_sbatch_string(command="python -u -m submitit.core._submit", folder=str(folder), **params)


def task(job, notebook, opts):
    """One array task: ``jobs.run_job`` on the GPUs SLURM gave the task (its CUDA_VISIBLE_DEVICES)."""
    env = os.environ.get
    sid = f"{env('SLURM_ARRAY_JOB_ID', '?')}_{env('SLURM_ARRAY_TASK_ID', '?')}"
    return joblib.run_job(job, notebook, opts, env("CUDA_VISIBLE_DEVICES", ""), lambda m: print(m, flush=True),
                          int(env("SLURM_CPUS_PER_TASK") or 0) or None,
                          extra={"slurm_job_id": sid, "host": socket.gethostname()})


def _mark(job, state, **kw):
    """Write ``state`` (and ``kw``) into the job's status.json, keeping what is there; the job's row."""
    job["dir"].mkdir(parents=True, exist_ok=True)
    st = {**joblib.read_status(job["dir"]), "job": job["id"], "state": state, "params_hash": job["hash"],
          "params": job["params"], **kw}
    atomic_json(job["dir"] / "status.json", st)
    return joblib.row(job["id"], st)


def squeue(array_id):
    """The task ids ("<array>_<i>") of ``array_id`` still queued or running; None when squeue cannot tell."""
    r = _sh("squeue", "-h", "-r", "-j", str(array_id), "-o", "%i")
    if r.returncode != 0:
        return set() if "Invalid job id" in r.stderr else None
    return {x.strip() for x in r.stdout.split() if x.strip()}


def _last_line(text, named=False):
    """The last non-empty line of an error text (``named``: of its ``Name: message`` lines, a task's exception)."""
    lines = [x.strip() for x in str(text).splitlines() if x.strip()]
    if named:
        lines = [x for x in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", x)] or lines
    return (lines or ["no message"])[-1]


def _result(job, sub):
    """The row a finished task returned; its job marked failed when the task itself raised (not the notebook)."""
    with contextlib.suppress(Exception):
        return sub.result()
    return _mark(job, "failed", error=_last_line(sub.exception(), named=True))


def run_array(jobs, notebook, out_dir, opts, log=print, *, partition, gpus_per_job=1, max_parallel=None,
              options=None, poll=POLL):
    """Submit the unfinished ``jobs`` as one array and wait for it; one summary row per job (in order)."""
    import submitit
    out, nb = Path(out_dir).resolve(), Path(notebook).resolve()
    rows = {j["id"]: r for j in jobs if (r := joblib.done_before(j, nb, opts.rerun, log))}
    todo = [j for j in jobs if j["id"] not in rows]
    if not todo:
        return [rows[j["id"]] for j in jobs]
    ex = submitit.SlurmExecutor(folder=str(out / ".slurm"), max_num_timeout=0)
    ex.update_parameters(**parameters(partition, gpus_per_job, max_parallel, time_limit(opts.timeout, opts.retries),
                                      options))
    try:
        with ex.batch():
            subs = [ex.submit(task, j, str(nb), opts) for j in todo]
    except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError) as e:
        raise ValueError(f"--engine slurm: sbatch refused the array: {_last_line(e)}") from None
    array_id = subs[0].job_id.split("_")[0]
    for j, s in zip(todo, subs):
        _mark(j, "queued", slurm_job_id=s.job_id, notebook=str(nb), error=None)
    each = [f"{gpus_per_job} GPU(s) each"] * bool(gpus_per_job) + [f"{max_parallel} at once"] * bool(max_parallel)
    log(f"submitted SLURM array {array_id}: " + ", ".join([f"{len(todo)} job(s) on partition {partition}", *each]))
    pending, missing, running = {j["id"]: (j, s) for j, s in zip(todo, subs)}, {}, set()
    try:
        while pending:
            queue_ids = squeue(array_id)
            for jid, (j, s) in list(pending.items()):
                st = joblib.read_status(j["dir"])
                if st.get("state") == "running" and jid not in running:
                    running.add(jid)
                    log(f"{jid}: running ({s.job_id} on {st.get('host')}, "
                        f"CUDA_VISIBLE_DEVICES={st.get('cuda_visible_devices')!r})")
                if s.paths.result_pickle.exists():
                    rows[jid] = _result(j, s)
                elif queue_ids is not None and s.job_id not in queue_ids:
                    missing[jid] = missing.get(jid, 0) + 1
                    if missing[jid] >= LOST_AFTER:
                        rows[jid] = joblib.row(jid, st) if st.get("state") in joblib.DONE else _mark(
                            j, "lost", error=f"SLURM task {s.job_id} ended without a result (cancelled, time limit "
                                             f"or node failure); see {out / '.slurm'}")
                if jid in rows:
                    del pending[jid]
                    r = rows[jid]
                    log(f"{jid}: {r['state']}" + (f" in {r['seconds']:.1f} s" if r.get("seconds") else "")
                        + (f": {r['error']}" if r.get("error") else ""))
            if pending:
                time.sleep(poll)
    except KeyboardInterrupt:
        r = _sh("scancel", str(array_id))
        log(f"scancel {array_id}: " + ("done" if r.returncode == 0 else r.stderr.strip()))
        with contextlib.suppress(KeyboardInterrupt):     # let the tasks write their last state first (a 2nd ^C: no)
            deadline = time.monotonic() + CANCEL_WAIT
            while squeue(array_id) and time.monotonic() < deadline:
                time.sleep(0.5)
        for jid, (j, _) in pending.items():
            if joblib.read_status(j["dir"]).get("state") not in joblib.DONE:
                _mark(j, "cancelled", error=f"cancelled by Ctrl-C of closekit batch (scancel {array_id}); "
                                            "rerun the command to resume")
        raise
    return [rows[j["id"]] for j in jobs]
