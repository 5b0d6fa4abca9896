"""The SLURM engine of ``closekit batch`` (CLOSE's studies beyond one machine): the jobs go out as one submitit
job array whose tasks run exactly the local job function (``batch.run_job``: papermill subprocess, whole-job
timeout that kills the kernel, dead-kernel retry, status.json, HTML report) in the output directory, which must be
on the cluster's shared filesystem. Reruns skip finished jobs before submitting; one failing task never stops the
others; job states come from the job directories (``closekit batch --status DIR``), never from sacct (absent
without slurmdbd); Ctrl-C cancels the array (scancel) and marks its unfinished jobs cancelled.

    out_dir/.slurm/        submitit's pickles and the tasks' own logs (<array>_<task>_log.out / .err)
    out_dir/<job>/         as with the local engine, status.json also holding slurm_job_id and host
"""
import contextlib
import json
import math
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import yaml

from . import batch
from .checkpoint import atomic_json

POLL = 2.0          # seconds between two looks at the array
LOST_AFTER = 3      # polls a task may be missing from squeue without a result before it counts as lost
CANCEL_WAIT = 60.0  # seconds Ctrl-C waits for the cancelled tasks to leave the queue (SLURM's KillWait)
TERMINAL = ("ok", "failed", "timed_out", "dead_kernel", "lost", "cancelled")     # not "interrupted": resumable


def parse_options(pairs):
    """``["cpus_per_task=8", "mem=32G"]`` -> {"cpus_per_task": 8, "mem": "32G"} (values read as YAML)."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--slurm expects KEY=VALUE, got {pair!r} (e.g. --slurm cpus_per_task=8 mem=32G)")
        k, v = pair.split("=", 1)
        try:
            out[k.strip().replace("-", "_")] = yaml.safe_load(v)
        except yaml.YAMLError:
            raise ValueError(f"--slurm {pair}: the value is not valid YAML; quote it") from None
    return out


def time_limit(timeout, retries):
    """SLURM minutes for one task: every attempt's timeout, the retry delays and 5 minutes for start and HTML;
    a day without a timeout (override with --slurm time=MINUTES)."""
    if timeout is None:
        return 24 * 60
    return int(math.ceil((timeout * (retries + 1) + batch.RETRY_DELAY * retries) / 60)) + 5


def executor(folder, partition, gpus_per_job=1, max_parallel=None, time_min=60, options=None):
    """A submitit SlurmExecutor with closekit's parameters; ``options`` it does not know go to sbatch as
    --key=value."""
    try:
        import submitit
        from submitit.slurm.slurm import _get_default_parameters
    except ImportError:
        raise ValueError("the SLURM engine needs submitit: pip install 'closekit[slurm]'") from None
    ex = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=0)
    params = dict(partition=partition, job_name="closekit-batch", time=time_min, stderr_to_stdout=True)
    if gpus_per_job:
        params["gpus_per_node"] = int(gpus_per_job)
    if max_parallel:
        params["array_parallelism"] = int(max_parallel)
    valid, extra = set(_get_default_parameters()), {}
    for k, v in (options or {}).items():
        if k in valid:
            params[k] = v
        else:
            extra[k.replace("_", "-")] = v
    if extra:
        params["additional_parameters"] = {**params.get("additional_parameters", {}), **extra}
    ex.update_parameters(**params)
    return ex


def task(job, notebook, timeout, retries, kernel, html, rerun, progress_every):
    """One array task: ``batch.run_job`` on the GPUs SLURM gave the task (its CUDA_VISIBLE_DEVICES)."""
    slot = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    sid = os.environ.get("SLURM_ARRAY_JOB_ID", "?") + "_" + os.environ.get("SLURM_ARRAY_TASK_ID", "?")
    return batch.run_job(job, notebook, slot, timeout, retries, kernel, html, lambda m: print(m, flush=True),
                         int(cpus) if cpus else None, rerun, progress_every,
                         extra={"slurm_job_id": sid, "host": socket.gethostname()})


def _status(job):
    """The job's status.json (empty when missing or unreadable)."""
    try:
        return json.loads((job["dir"] / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _mark(job, state, **kw):
    """Write ``state`` (and ``kw``) into the job's status.json, keeping what is there."""
    job["dir"].mkdir(parents=True, exist_ok=True)
    atomic_json(job["dir"] / "status.json", {**_status(job), "job": job["id"], "state": state,
                                             "params_hash": job["hash"], "params": job["params"], **kw})


def squeue(array_id):
    """The task ids ("<array>_<i>") of ``array_id`` still queued or running; None when squeue cannot tell."""
    r = subprocess.run(["squeue", "-h", "-r", "-j", str(array_id), "-o", "%i"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        return set() if "Invalid job id" in r.stderr else None
    return {x.strip() for x in r.stdout.split() if x.strip()}


def cancel(array_id, log=print):
    """scancel the whole array."""
    r = subprocess.run(["scancel", str(array_id)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    log(f"scancel {array_id}: " + ("done" if r.returncode == 0 else r.stderr.strip()))


def _exception_line(e):
    """``Name: message`` of the last exception in a task's traceback text (submitit's FailedJobError)."""
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    named = [x for x in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", x)]
    return (named or lines or ["the SLURM task raised"])[-1]


def _row(job, state=None, error=None):
    st = _status(job)
    return dict(job=job["id"], state=state or st.get("state", "lost"), seconds=st.get("seconds"),
                attempts=st.get("attempts", 0), error=error if error is not None else st.get("error"))


def run_array(jobs, notebook, out_dir, *, partition, gpus_per_job=1, max_parallel=None, options=None, timeout=None,
              retries=1, kernel="python3", html=True, log=print, rerun=False, progress_every=30.0, poll=POLL):
    """Submit the unfinished ``jobs`` as one array and wait for it; one summary row per job (in order)."""
    out, nb = Path(out_dir).resolve(), Path(notebook).resolve()
    rows, todo = {}, []
    for j in jobs:
        if not rerun and batch.finished(j, nb):
            rows[j["id"]] = dict(job=j["id"], state="skipped", seconds=_status(j).get("seconds"), attempts=0,
                                 error=None)
        else:
            todo.append(j)
    if not todo:
        return [rows[j["id"]] for j in jobs]
    ex = executor(out / ".slurm", partition, gpus_per_job, max_parallel, time_limit(timeout, retries), options)
    with ex.batch():
        subs = [ex.submit(task, j, str(nb), timeout, retries, kernel, html, rerun, progress_every) for j in todo]
    array_id = subs[0].job_id.split("_")[0]
    for j, s in zip(todo, subs):
        _mark(j, "queued", slurm_job_id=s.job_id, notebook=str(nb), error=None)
    log(f"submitted SLURM array {array_id}: {len(todo)} job(s) on partition {partition}"
        + (f", {gpus_per_job} GPU(s) each" if gpus_per_job else "") + (f", {max_parallel} at once" if max_parallel
                                                                      else ""))
    pending, missing, shown = dict(zip((j["id"] for j in todo), zip(todo, subs))), {}, {}
    try:
        while pending:
            queue_ids = squeue(array_id)
            for jid, (j, s) in list(pending.items()):
                st = _status(j)
                if st.get("state") != shown.get(jid):
                    shown[jid] = st.get("state")
                    if shown[jid] == "running":
                        log(f"{jid}: running ({s.job_id} on {st.get('host')}, "
                            f"CUDA_VISIBLE_DEVICES={st.get('cuda_visible_devices')!r})")
                if s.paths.result_pickle.exists():
                    with contextlib.suppress(Exception):
                        rows[jid] = s.result()
                    if jid not in rows:      # the task itself raised (not the notebook: run_job catches that)
                        err = _exception_line(s.exception())
                        _mark(j, "failed", error=err)
                        rows[jid] = _row(j, "failed", err)
                elif queue_ids is not None and s.job_id not in queue_ids:
                    missing[jid] = missing.get(jid, 0) + 1
                    if missing[jid] < LOST_AFTER:
                        continue
                    if st.get("state") not in TERMINAL:
                        _mark(j, "lost", error=f"SLURM task {s.job_id} ended without a result (cancelled, time "
                                               f"limit or node failure); see {out / '.slurm'}")
                    rows[jid] = _row(j)
                else:
                    continue
                del pending[jid]
                r = rows[jid]
                log(f"{jid}: {r['state']}" + (f" in {r['seconds']:.1f} s" if r.get("seconds") else "")
                    + (f": {r['error']}" if r.get("error") else ""))
            if pending:
                time.sleep(poll)
    except KeyboardInterrupt:
        cancel(array_id, log)
        with contextlib.suppress(KeyboardInterrupt):     # let the tasks write their last state first (a 2nd ^C: no)
            deadline = time.monotonic() + CANCEL_WAIT
            while squeue(array_id) and time.monotonic() < deadline:
                time.sleep(0.5)
        for jid, (j, _) in pending.items():
            if _status(j).get("state") not in TERMINAL:
                _mark(j, "cancelled", error=f"cancelled by Ctrl-C of closekit batch (scancel {array_id}); "
                                            "rerun the command to resume")
        raise
    return [rows[j["id"]] for j in jobs]
