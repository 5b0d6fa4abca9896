"""One notebook job of ``closekit batch`` (CLOSE's studies as papermill runs), the same for both engines (local:
closekit.batch, SLURM: closekit.slurm): the jobs of a notebook and its params sets, their options (JobOptions), and
``run_job``: an flock on the job directory (the first runner to take it stops what a runner killed with -9 left
running there), papermill under a wall-clock timeout, retries of dead kernels, progress polled into status.json, an
input-free HTML report. A notebook with a parameter ``record_dir`` gets its job directory there (its results.json).

    <job dir>/  params.yaml  <notebook>.ipynb/.html  results.json  status.json  progress.json  .lock  *.log
"""
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import yaml

from . import procs, progress
from .checkpoint import atomic_json
from .config import read_yaml
from .grid import expand_grid

RETRY_DELAY = 5.0  # seconds before a dead kernel's job is retried
DEAD_KERNEL = 138  # papermill's exit code when the kernel died (OOM, segfault)
TAIL = 20          # log lines kept in status.json
DONE = ("ok", "failed", "timed_out", "dead_kernel", "lost", "cancelled")  # final states ("interrupted" resumes)


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """How each job runs, whichever engine runs it; bad values refused in one line."""
    timeout: float | None = None  # wall-clock seconds per attempt (None: no limit)
    retries: int = 1             # retries of a job whose kernel died
    kernel: str = "python3"      # Jupyter kernel spec
    html: bool = True            # an input-free HTML report per ok job
    rerun: bool = False          # run finished jobs again
    progress_every: float = 10.0  # seconds between two progress lines within a phase (0: every change)

    def __post_init__(self):
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"--timeout {self.timeout:g} must be > 0 seconds; leave it out for no limit")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"--retries {self.retries} must be an int >= 0 (0: no retry of a dead kernel)")
        if not self.progress_every >= 0:
            raise ValueError(f"--progress-every {self.progress_every:g} must be >= 0 seconds (0: every change)")


def notebook_parameters(notebook):
    """Papermill's parameters of ``notebook`` ({name: info}), for a run notebook (``space``) every RunConfig key."""
    nb = Path(notebook)
    if not nb.is_file():
        raise FileNotFoundError(f"notebook {nb} not found; pass an existing .ipynb file first")
    if nb.suffix != ".ipynb":
        raise ValueError(f"notebook {nb} is not a .ipynb file; pass the notebook first, then the params YAML files")
    import papermill
    with warnings.catch_warnings():      # nbformat's validation warnings: the error below says it in one line
        warnings.simplefilter("ignore")
        try:
            known = papermill.inspect_notebook(str(nb))
        except Exception as e:           # noqa: BLE001  (nbformat / JSON errors of every kind)
            raise ValueError(f"notebook {nb} cannot be read as a notebook ({type(e).__name__}); "
                             "pass a valid .ipynb file") from None
    if "space" in known:     # a run notebook takes every RunConfig key, typed as RunConfig declares it
        from .config import RunConfig
        known.update({f.name: {"inferred_type_name": str(f.type).replace("tuple", "list")}
                      for f in dataclasses.fields(RunConfig) if f.name not in known})
    return known


def load_params(item):
    """(name, params) of a YAML file path, a dict (name "job") or a (name, dict) pair."""
    if isinstance(item, tuple):
        return str(item[0]), dict(item[1])
    if isinstance(item, dict):
        return "job", dict(item)
    return Path(item).stem, read_yaml(item)       # floats as closekit train reads them (params.yaml: safe_dump)


def params_hash(params):
    """sha1 of the canonical JSON of ``params``."""
    return hashlib.sha1(json.dumps(params, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def make_jobs(notebook, params_files_or_dicts, out_dir, grid=None, known=None):
    """Job dicts (id, src, params, hash, dir, record_dir: does the notebook take one) of every params set x ``grid``
    point, checked against the notebook's parameters ``known``."""
    known = notebook_parameters(notebook) if known is None else known
    items, jobs = list(params_files_or_dicts), {}
    for item in items or [(Path(notebook).stem, {})]:      # no params files: the defaults at every grid point
        name, params = load_params(item)
        src = str(item) if isinstance(item, (str, os.PathLike)) else name if items else "grid"
        unknown = ", ".join(repr(k) for k in params if k not in known)
        if unknown:
            raise ValueError(f"{src}: unknown parameter(s) {unknown} for {Path(notebook).name}; "
                             f"known: {', '.join(known)}")
        for point_name, point in expand_grid(name, params, grid):
            h = params_hash(point)
            jid = f"{point_name}-{h[:8]}"
            jobs[jid] = dict(id=jid, src=src, params=point, hash=h, dir=Path(out_dir) / jid,
                             record_dir="record_dir" in known)
    return list(jobs.values())


def read_status(d):
    """A job directory's status.json ({} when missing or unreadable)."""
    try:
        return json.loads((Path(d) / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def done_before(job, notebook, rerun=False, log=print):
    """The row of a job whose status.json says ok for the same params and notebook bytes (None: run it)."""
    old = read_status(job["dir"])
    if rerun or (old.get("state"), old.get("params_hash")) != ("ok", job["hash"]):
        return None
    if old.get("notebook_sha256") != _sha256(notebook):
        log(f"{job['id']}: the notebook changed since its ok run: running it again")
        return None
    return {**row(job["id"], old, "skipped", ""), "attempts": 0}


def finished(job, notebook):
    """True when the job's status.json says ok for the same params and the same notebook bytes."""
    return done_before(job, notebook, log=lambda line: None) is not None


def row(job_id, st, state=None, error=None):
    """A summary row (job, state, seconds, attempts, error) from a status dict."""
    return dict(job=job_id, state=state or st.get("state", "lost"), seconds=st.get("seconds"),
                attempts=st.get("attempts", 0), error=error if error is not None else st.get("error"))


def _now():
    """UTC time stamp."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _tail(path):
    """The last TAIL lines of a text file (empty if missing)."""
    return Path(path).read_text(errors="replace").splitlines()[-TAIL:] if Path(path).exists() else []


def progress_line(p):
    """``train 12/30`` of a progress dict (``score 7`` without a total, ``rank`` without counts)."""
    done, total = p.get("done"), p.get("total")
    return str(p.get("phase")) + (f" {done}/{total}" if total is not None else f" {done}" if done is not None else "")


def _watcher(jid, d, status, log, every, t0):
    """``poll(now, final)``: progress.json into ``status`` and status.json, a line per phase or ``every`` s."""
    shown, seen = [None, 0.0], [None]  # [key, time] of the last line; the last key read

    def show(key, p, now):
        shown[:] = key, now
        log(f"{jid}: {progress_line(p)} ({now - t0:.0f} s)")

    def poll(now=None, final=False):
        now = time.time() if now is None else now
        p = progress.read(d / "progress.json")
        if p is None:
            return
        if p != status.get("progress"):
            if seen[0] is not None and seen[0] != shown[0] and seen[0][0] != p.get("phase"):
                show(seen[0], status["progress"], now)     # the phase that just ended, as far as it got
            status["progress"] = p
            with contextlib.suppress(OSError):          # progress is best effort
                atomic_json(d / "status.json", status)
        key = seen[0] = (p.get("phase"), p.get("done"), p.get("total"))
        if key != shown[0] and (final or shown[0] is None or key[0] != shown[0][0] or now - shown[1] >= every):
            show(key, p, now)
    return poll


def _error_line(out, log_path, rc):
    """The notebook's first error output as ``Name: message``, else the last line of papermill's log."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        for o in (o for cell in json.loads(Path(out).read_text())["cells"] for o in cell.get("outputs", [])):
            if o.get("output_type") == "error":
                return f"{o['ename']}: {o['evalue']}"
    lines = [x for x in _tail(log_path) if x.strip()]
    return lines[-1].strip() if lines else f"papermill exited with code {rc}"


def _html(out):
    """Convert the executed notebook to HTML without input cells; (file name, None) or (None, error line)."""
    r = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--no-input", str(out)],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode == 0 and out.with_suffix(".html").exists():
        return out.with_suffix(".html").name, None
    return None, ([x for x in r.stderr.splitlines() if x.strip()] or [f"nbconvert exited {r.returncode}"])[-1]


def run_job(job, notebook, opts, slot="", log=print, threads=None, extra=None):
    """Run one job in its directory unless finished (``threads``: its OMP_NUM_THREADS; ``extra``: status keys)."""
    d, nb = job["dir"], Path(notebook).resolve()
    skipped = done_before(job, nb, opts.rerun, log)
    if skipped:
        return skipped
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            error = (f"another closekit batch is running this job ({lock.read().strip() or 'another closekit batch'}"
                     f"; it holds {d / '.lock'})")
            log(f"{job['id']}: locked: {error}")
            return row(job["id"], {}, "locked", error)
        lock.seek(0)
        killed = lock.read().strip()
        n = procs.stop_tagged(str(d))        # what a runner killed with -9 left running in this job
        if n:
            log(f"{job['id']}: stopped {n} process(es) left running by a killed runner ({killed or 'unknown'})")
        lock.truncate(0)
        lock.write(f"pid {os.getpid()} on {socket.gethostname()} since {_now()}\n")
        lock.flush()
        return _run_locked(job, d, nb, opts, slot, log, threads, extra)


def _run_locked(job, d, nb, opts, slot, log, threads, extra):
    """run_job's work, holding the job directory's lock."""
    (d / "params.yaml").write_text(yaml.safe_dump(job["params"], sort_keys=False))
    out = d / f"{nb.stem}.ipynb"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": slot, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1",
           progress.ENV: str(d / "progress.json"), procs.TAG: str(d)}
    if threads and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "papermill", str(nb), str(out), "-f", str(d / "params.yaml"), "-k", opts.kernel,
           "--cwd", str(d), "--no-progress-bar", "--stdout-file", str(d / "stdout.log"), "--stderr-file",
           str(d / "stderr.log"), *(["-p", "record_dir", str(d)] if job.get("record_dir") else [])]
    status = dict(job=job["id"], state="running", params_hash=job["hash"], params=job["params"], notebook=str(nb),
                  notebook_sha256=_sha256(nb), params_src=job["src"], cuda_visible_devices=slot, start=_now(),
                  attempts=0, **(extra or {}))
    atomic_json(d / "status.json", status)
    log(f"{job['id']}: start (CUDA_VISIBLE_DEVICES={slot!r})")
    t0 = time.time()
    watch = _watcher(job["id"], d, status, log, opts.progress_every, t0)
    for attempt in range(1, opts.retries + 2):
        if attempt > 1:
            log(f"{job['id']}: dead kernel, retry {attempt - 1}/{opts.retries}")
            time.sleep(RETRY_DELAY)
        for f in ("results.json", "progress.json"):
            (d / f).unlink(missing_ok=True)
        for f in ("stdout.log", "stderr.log"):  # papermill creates them only on a first write
            (d / f).write_text("")
        with open(d / "papermill.log", "w" if attempt == 1 else "a") as logf:
            rc = procs.spawn(cmd, env, logf, opts.timeout, watch)
        watch(final=True)
        state = "timed_out" if rc is None else \
            {0: "ok", DEAD_KERNEL: "dead_kernel"}.get(rc, "failed" if rc > 0 else "interrupted")  # < 0: a signal
        state = "interrupted" if procs.stopping() else state
        if state != "dead_kernel":
            break
    error = "" if state == "ok" else f"wall-clock timeout after {opts.timeout:g} s" if state == "timed_out" else \
        "interrupted: the runner or the scheduler stopped the job; a rerun resumes it" if state == "interrupted" else \
        _error_line(out, d / "papermill.log", rc)
    status.update(state=state, end=_now(), seconds=round(time.time() - t0, 2), attempts=attempt, returncode=rc,
                  error=error or None, stderr_tail=_tail(d / "stderr.log"), log_tail=_tail(d / "papermill.log"))
    if opts.html and state == "ok":
        status["html"], status["html_error"] = _html(out)
    atomic_json(d / "status.json", status)
    log(f"{job['id']}: {state} in {status['seconds']:.1f} s" + (f": {error}" if error else ""))
    return row(job["id"], status, error=error)
