"""Batch runs of one notebook over many parameter sets: one papermill subprocess per job, one job per GPU
(or CPU slot) at a time, a wall-clock timeout that kills papermill and its kernel, bounded retries of dead
kernels, a status.json per job so reruns skip finished jobs, and an input-free HTML report per ok job. A job's
``closekit.progress.report(...)`` calls land in its progress.json, which the batch polls into its log and status.json.
``--grid`` multiplies the params files (closekit.grid); ``--engine slurm`` runs the same job function as one SLURM
array (closekit.slurm); ``--status DIR`` reads every job's status.json. Ctrl-C or SIGTERM of the runner ends every
job's process tree and marks it interrupted (a rerun resumes it); a lock on the job directory keeps two runners off
one job.

    out_dir/<params stem>[_<key>-<value>...]-<sha1[:8]>/  params.yaml  <notebook>.ipynb  <notebook>.html
                                       results.json  status.json  stdout.log  stderr.log (cell streams)  papermill.log
                                       progress.json (the last closekit.progress.report of the job)  .lock
"""
import contextlib
import fcntl
import hashlib
import json
import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import yaml

from . import procs, progress
from .grid import expand_grid, parse_grid
from .checkpoint import atomic_json
from .config import read_yaml
from .procs import GRACE, ensure_kernel  # noqa: F401  (batch.ensure_kernel: the API users and tests call)

RETRY_DELAY = 5.0  # seconds before a dead kernel's job is retried
DEAD_KERNEL = 138  # papermill's exit code when the kernel died (OOM, segfault)


def load_params(item):
    """(name, params) of a YAML file path, a dict (name "job") or a (name, dict) pair."""
    if isinstance(item, tuple):
        return str(item[0]), dict(item[1])
    if isinstance(item, dict):
        return "job", dict(item)
    from papermill.iorw import NoDatesSafeLoader  # what papermill -f uses: dates stay strings
    return Path(item).stem, read_yaml(item, loader=NoDatesSafeLoader)


def params_hash(params):
    """sha1 of the canonical JSON of ``params``."""
    return hashlib.sha1(json.dumps(params, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def make_jobs(notebook, params_files_or_dicts, out_dir, grid=None):
    """Job dicts (id, src, params, hash, dir), every params set checked against the notebook's parameters;
    ``grid``: [(key, values)] (``parse_grid``) expanded over every params set."""
    import papermill
    known, jobs = papermill.inspect_notebook(str(notebook)), {}
    items = list(params_files_or_dicts)
    srcs = [str(i) if isinstance(i, (str, os.PathLike)) else load_params(i)[0] for i in items]
    loaded = [load_params(i) for i in items]
    for src, (name, params) in zip(srcs, loaded):
        unknown = ", ".join(repr(k) for k in params if k not in known)
        if unknown:
            raise ValueError(f"{src}: unknown parameter(s) {unknown} for {Path(notebook).name}; "
                             f"known: {', '.join(known)}")
    per_item = [expand_grid([li], grid) for li in loaded] if loaded else [expand_grid([], grid, Path(notebook).stem)]
    for src, points in zip(srcs or ["grid"], per_item):
        for name, params in points:
            h = params_hash(params)
            jid = f"{name}-{h[:8]}"
            jobs[jid] = dict(id=jid, src=src, params=params, hash=h, dir=Path(out_dir) / jid)
    return list(jobs.values())


def _now():
    """UTC time stamp."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _tail(path, n=20):
    """Last ``n`` lines of a text file (empty if missing)."""
    return Path(path).read_text(errors="replace").splitlines()[-n:] if Path(path).exists() else []


def _progress_line(p):
    """``train 12/30`` of a progress dict (``score 7`` without a total, ``rank`` without counts)."""
    done, total = p.get("done"), p.get("total")
    return str(p.get("phase")) + (f" {done}/{total}" if total is not None else f" {done}" if done is not None else "")


def _watcher(jid, d, status, log, every, t0):
    """A ``poll(now=None, final=False)`` that reads ``d``/progress.json, puts it into ``status`` (and status.json)
    when it changed and logs it: a new phase at once, else at most every ``every`` s and only what changed since
    the last line (``final``: whatever changed)."""
    shown = [None, 0.0]  # (phase, done, total) of the last line and its time

    def poll(now=None, final=False):
        now = time.time() if now is None else now
        p = progress.read(d / "progress.json")
        if p is None:
            return
        if p != status.get("progress"):
            status["progress"] = p
            with contextlib.suppress(OSError):  # progress is best effort
                atomic_json(d / "status.json", status)
        key = (p.get("phase"), p.get("done"), p.get("total"))
        if key != shown[0] and (final or shown[0] is None or key[0] != shown[0][0] or now - shown[1] >= every):
            shown[:] = key, now
            log(f"{jid}: {_progress_line(p)} ({now - t0:.0f} s)")
    return poll


def _error_line(out, log_path, rc):
    """The notebook's first error output as ``Name: message``, else the last line of papermill's log."""
    try:
        for cell in json.loads(Path(out).read_text())["cells"]:
            for o in cell.get("outputs", []):
                if o.get("output_type") == "error":
                    return f"{o['ename']}: {o['evalue']}"
    except (OSError, ValueError, KeyError):
        pass
    lines = [x for x in _tail(log_path) if x.strip()]
    return lines[-1].strip() if lines else f"papermill exited with code {rc}"


def _html(out):
    """Convert the executed notebook to HTML without input cells; (file name, None) or (None, error line)."""
    r = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--no-input", str(out)],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode == 0 and out.with_suffix(".html").exists():
        return out.with_suffix(".html").name, None
    return None, ([x for x in r.stderr.splitlines() if x.strip()] or [f"nbconvert exited {r.returncode}"])[-1]


def _old_status(d):
    """A job directory's status.json ({} when missing or unreadable)."""
    try:
        return json.loads((Path(d) / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def finished(job, notebook):
    """True when the job's status.json says ok for the same params and the same notebook bytes."""
    old, nb = _old_status(job["dir"]), Path(notebook).resolve()
    return old.get("state") == "ok" and old.get("params_hash") == job["hash"] and \
        old.get("notebook_sha256") == hashlib.sha256(nb.read_bytes()).hexdigest()


def run_job(job, notebook, slot="", timeout=None, retries=1, kernel="python3", html=True, log=print, threads=None,
            rerun=False, progress_every=30.0, extra=None):
    """Run one job in its directory (skip it when status.json says ok for the same params and notebook, unless
    ``rerun``); its summary row. ``threads``: OMP_NUM_THREADS of the job (CPU slots share the cores) unless the
    caller's environment sets it. ``progress_every``: seconds between two progress lines of one phase (0: every
    change). ``extra``: more keys for status.json (the SLURM engine's task id and host)."""
    d, nb = job["dir"], Path(notebook).resolve()
    nb_sha = hashlib.sha256(nb.read_bytes()).hexdigest()
    old = _old_status(d)
    if old.get("state") == "ok" and old.get("params_hash") == job["hash"] and not rerun:
        if old.get("notebook_sha256") == nb_sha:
            return dict(job=job["id"], state="skipped", seconds=old.get("seconds"), attempts=0, error=None)
        log(f"{job['id']}: the notebook changed since its ok run: running it again")
    d.mkdir(parents=True, exist_ok=True)
    lock = open(d / ".lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        error = f"another closekit batch is running this job (it holds {d / '.lock'})"
        log(f"{job['id']}: locked: {error}")
        return dict(job=job["id"], state="locked", seconds=None, attempts=0, error=error)
    try:
        return _run_locked(job, d, nb, nb_sha, slot, timeout, retries, kernel, html, log, threads, progress_every,
                           extra)
    finally:
        lock.close()


def _run_locked(job, d, nb, nb_sha, slot, timeout, retries, kernel, html, log, threads, progress_every, extra):
    """run_job's work, holding the job directory's lock."""
    (d / "params.yaml").write_text(yaml.safe_dump(job["params"], sort_keys=False))
    out = d / f"{nb.stem}.ipynb"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": slot, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1",
           "CLOSEKIT_RECORD_DIR": str(d), progress.ENV: str(d / "progress.json")}
    if threads and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "papermill", str(nb), str(out), "-f", str(d / "params.yaml"), "-k", kernel,
           "--cwd", str(d), "--no-progress-bar", "--stdout-file", str(d / "stdout.log"),
           "--stderr-file", str(d / "stderr.log")]
    status = dict(job=job["id"], state="running", params_hash=job["hash"], params=job["params"], notebook=str(nb),
                  notebook_sha256=nb_sha, params_src=job["src"], cuda_visible_devices=slot, start=_now(), attempts=0,
                  **(extra or {}))
    atomic_json(d / "status.json", status)
    log(f"{job['id']}: start (CUDA_VISIBLE_DEVICES={slot!r})")
    t0 = time.time()
    watch = _watcher(job["id"], d, status, log, progress_every, t0)
    for attempt in range(1, retries + 2):
        if attempt > 1:
            log(f"{job['id']}: dead kernel, retry {attempt - 1}/{retries}")
            time.sleep(RETRY_DELAY)
        (d / "results.json").unlink(missing_ok=True)
        (d / "progress.json").unlink(missing_ok=True)
        for f in ("stdout.log", "stderr.log"):  # papermill creates them only on a first write
            (d / f).write_text("")
        with open(d / "papermill.log", "w" if attempt == 1 else "a") as logf:
            rc = procs.spawn(cmd, env, logf, timeout, watch)
        watch(final=True)
        state = "timed_out" if rc is None else \
            {0: "ok", DEAD_KERNEL: "dead_kernel"}.get(rc, "failed" if rc > 0 else "interrupted")  # < 0: a signal
        if procs.stopping():
            state = "interrupted"
        if state != "dead_kernel":
            break
    error = None if state == "ok" else \
        f"wall-clock timeout after {timeout:g} s" if state == "timed_out" else \
        "interrupted: the runner or the scheduler stopped the job; a rerun resumes it" if state == "interrupted" else \
        _error_line(out, d / "papermill.log", rc)
    status.update(state=state, end=_now(), seconds=round(time.time() - t0, 2), attempts=attempt, returncode=rc,
                  error=error, stderr_tail=_tail(d / "stderr.log"), log_tail=_tail(d / "papermill.log"))
    if html and state == "ok":
        status["html"], status["html_error"] = _html(out)
    atomic_json(d / "status.json", status)
    log(f"{job['id']}: {state} in {status['seconds']:.1f} s" + (f": {error}" if error else ""))
    return dict(job=job["id"], state=state, seconds=status["seconds"], attempts=attempt, error=error)


def run_batch(notebook, params_files_or_dicts, out_dir, *, gpus=None, cpu_slots=1, timeout=None, retries=1,
              kernel="python3", html=True, log=print, rerun=False, progress_every=30.0, grid=None, engine="local",
              slurm=None):
    """Run ``notebook`` once per params file/dict (times every ``grid`` point: [(key, values)] or ["key=v1,v2"])
    under ``out_dir`` (``rerun``: finished jobs too); the summary DataFrame (one row per job). ``progress_every``:
    seconds between two progress lines of a job's phase. ``engine``: local (GPU ids / CPU slots of this machine)
    or slurm (one job array through submitit; ``slurm``: the options of ``closekit.slurm.run_array``)."""
    if grid and isinstance(grid[0], str):
        grid = parse_grid(grid, notebook)
    jobs = make_jobs(notebook, params_files_or_dicts, Path(out_dir).resolve(), grid)  # ValueError before any run
    procs.check_kernel(kernel, log)
    if engine not in ("local", "slurm"):
        raise ValueError(f"engine {engine!r} is not one of local, slurm")
    with procs.sigterm_as_interrupt():
        if engine == "slurm":
            from . import slurm as slurmlib
            rows = slurmlib.run_array(jobs, notebook, out_dir, timeout=timeout, retries=retries, kernel=kernel,
                                      html=html, log=log, rerun=rerun, progress_every=progress_every, **(slurm or {}))
        else:
            rows = _run_local(jobs, notebook, gpus, cpu_slots, timeout, retries, kernel, html, log, rerun,
                              progress_every)
    return _summary(rows, out_dir, log)


def _run_local(jobs, notebook, gpus, cpu_slots, timeout, retries, kernel, html, log, rerun, progress_every):
    """The local engine: one job per GPU id / CPU slot at a time; the job rows in order."""
    if isinstance(gpus, str):
        gpus = [g for g in gpus.split(",") if g.strip()]
    slots = [str(g).strip() for g in gpus] if gpus is not None else [""] * int(cpu_slots)
    if not slots:
        raise ValueError("no GPU ids / CPU slots to run on")
    threads = None if gpus is not None else max(1, (os.cpu_count() or 1) // len(slots))   # CPU slots share cores
    free = queue.Queue()
    for s in slots:
        free.put(s)

    def work(job):
        slot = free.get()
        try:
            return run_job(job, notebook, slot, timeout, retries, kernel, html, log, threads, rerun, progress_every)
        finally:
            free.put(slot)
    ex = ThreadPoolExecutor(len(slots), thread_name_prefix="closekit-batch")
    try:
        rows = [f.result() for f in [ex.submit(work, j) for j in jobs]]
    except KeyboardInterrupt:        # Ctrl-C or SIGTERM: end every job's process tree, let run_job mark it
        ex.shutdown(wait=False, cancel_futures=True)
        with procs.stop_all():
            ex.shutdown(wait=True)   # each stopped job writes state interrupted into its status.json
        raise
    ex.shutdown()
    return rows


def _summary(rows, out_dir, log):
    """The summary DataFrame of job rows, also written to out_dir/summary.csv and logged."""
    import pandas as pd
    summary = pd.DataFrame(rows, columns=["job", "state", "seconds", "attempts", "error"])
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    summary.to_csv(Path(out_dir) / "summary.csv", index=False)
    log(summary.to_string(index=False))
    return summary


def batch_status(out_dir):
    """Every job of a batch directory from its status.json (not from the scheduler): a DataFrame of job, state,
    attempts, seconds, gpu, progress, error, slurm_job_id."""
    import pandas as pd
    rows = []
    for st_path in sorted(Path(out_dir).glob("*/status.json")):
        try:
            st = json.loads(st_path.read_text())
        except (OSError, ValueError):
            st = {"state": "unreadable"}
        p = st.get("progress")
        rows.append(dict(job=st_path.parent.name, state=st.get("state"), attempts=st.get("attempts"),
                         seconds=st.get("seconds"), gpu=st.get("cuda_visible_devices"),
                         progress=_progress_line(p) if p else None, error=st.get("error"),
                         slurm_job_id=st.get("slurm_job_id")))
    if not rows and not Path(out_dir).is_dir():
        raise FileNotFoundError(f"batch directory {out_dir} not found")
    return pd.DataFrame(rows, columns=["job", "state", "attempts", "seconds", "gpu", "progress", "error",
                                       "slurm_job_id"])
