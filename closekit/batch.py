"""``closekit batch``: one notebook over many params sets (CLOSE's seeds x variants), each job run by closekit.jobs.

``run_batch`` checks everything before any work, runs the jobs on an engine (local: one job per GPU id or CPU slot
at a time; slurm: one job array, closekit.slurm) and writes out_dir/summary.csv from the jobs' status.json, so two
runners on one directory agree. Ctrl-C or SIGTERM ends every job's process tree and marks it interrupted.
"""
import fcntl
import os
import queue
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import jobs as joblib, procs, slurm as slurmlib
from .grid import parse_grid
from .jobs import JobOptions
from .procs import ensure_kernel  # noqa: F401  (batch.ensure_kernel: the API users and tests call)

GPU_DIR = Path("/proc/driver/nvidia/gpus")  # one entry per GPU the NVIDIA driver sees (no torch import needed)
COLUMNS = ["job", "state", "seconds", "attempts", "error"]
STATUS_COLUMNS = ["job", "state", "attempts", "seconds", "gpu", "progress", "error", "slurm_job_id"]
SLURM_FLAGS = {"partition": "--partition", "gpus_per_job": "--gpus-per-job", "max_parallel": "--max-parallel",
               "options": "--slurm"}      # closekit.slurm.run_array's options -> their flags in error lines


def check_out(out):
    """Refuse an output directory that is a file, lies under a file or cannot be written (before any work)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a directory (new, or a batch directory to resume)")
    base = next(p for p in [out, *out.parents] if p.exists())
    if not base.is_dir():
        raise ValueError(f"--out {out} lies under the file {base}; give a directory path")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: {base} is not writable; give a directory you can write")


def gpu_count():
    """CUDA GPUs the driver lists (its /proc entries, else ``nvidia-smi -L``; 0 without either)."""
    if GPU_DIR.is_dir():
        return len(list(GPU_DIR.iterdir()))
    r = shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                                      stdin=subprocess.DEVNULL)
    return sum(x.startswith("GPU ") for x in r.stdout.splitlines()) if r and r.returncode == 0 else 0


def gpu_slots(gpus):
    """Job slots of ``gpus`` ("0,1" or ids), refused in one line when this machine has no such CUDA GPU."""
    ids = [str(g).strip() for g in (gpus.split(",") if isinstance(gpus, str) else gpus) if str(g).strip()]
    if not ids:
        raise ValueError(f"--gpus {gpus!r} names no GPU; give ids such as 0,1 (or --cpu-slots N)")
    n = gpu_count()
    bad = [g for g in ids if g.isdigit() and int(g) >= n or not g.isdigit() and n == 0]
    if bad:
        raise ValueError(f"--gpus {','.join(ids)}: this machine has {n or 'no'} CUDA GPU(s) ({GPU_DIR}), so no GPU "
                         f"{', '.join(bad)}; use --cpu-slots N without a GPU")
    return ids


def run_batch(notebook, params_files_or_dicts, out_dir, opts=None, *, gpus=None, cpu_slots=1, log=print, grid=None,
              engine="local", slurm=None, **options):
    """Run ``notebook`` once per params file/dict x ``grid`` point ([(key, values)] or ["key=v1,v2"]) under
    ``out_dir``; the summary DataFrame. ``opts``: JobOptions (or its fields as keywords); ``engine``: local
    (``gpus`` ids or ``cpu_slots``) or slurm (``slurm``: closekit.slurm.run_array's options; None: defaults)."""
    opts = opts or JobOptions(**options)
    known = joblib.notebook_parameters(notebook)
    check_out(out_dir)
    slurm = {k: v for k, v in (slurm or {}).items() if v not in (None, {})}
    if engine not in ("local", "slurm"):
        raise ValueError(f"engine {engine!r} is not one of local, slurm")
    if engine == "local" and slurm:
        raise ValueError(f"{', '.join(SLURM_FLAGS.get(k, k) for k in slurm)}: SLURM option(s); add --engine slurm, "
                         "or leave them out")
    if engine == "slurm":
        slurmlib.check(**slurm)
        if gpus is not None:
            raise ValueError("--gpus picks this machine's GPUs; with --engine slurm use --gpus-per-job N")
    slots = gpu_slots(gpus) if gpus is not None else [""] * int(cpu_slots)
    if engine == "local" and not slots:
        raise ValueError(f"--cpu-slots {cpu_slots} must be >= 1")
    if grid and isinstance(grid[0], str):
        grid = parse_grid(grid, notebook, known)
    jobs = joblib.make_jobs(notebook, params_files_or_dicts, Path(out_dir).resolve(), grid, known)
    procs.check_kernel(opts.kernel, log)
    with procs.sigterm_as_interrupt():
        if engine == "slurm":
            rows = slurmlib.run_array(jobs, notebook, out_dir, opts, log, **slurm)
        else:   # CPU slots share the cores
            threads = None if gpus is not None else max(1, (os.cpu_count() or 1) // len(slots))
            rows = run_local(jobs, notebook, opts, log, slots, threads)
    return _summary(jobs, rows, out_dir, log)


def run_local(jobs, notebook, opts, log, slots, threads=None):
    """The local engine: one job per slot (a CUDA_VISIBLE_DEVICES value) at a time; the job rows in order."""
    free = queue.Queue()
    for s in slots:
        free.put(s)

    def work(job):
        slot = free.get()
        try:
            return joblib.run_job(job, notebook, opts, slot, log, threads)
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


def _summary(jobs, rows, out_dir, log):
    """The summary DataFrame, also out_dir/summary.csv (under a lock) and logged; a job another runner held gets
    the state its status.json has now, so the last summary written is right whichever runner wrote it."""
    import pandas as pd
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".summary.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for i, (job, r) in enumerate(zip(jobs, rows)):
            st = joblib.read_status(job["dir"])
            if r["state"] == "locked" and st.get("state") in joblib.DONE and st.get("params_hash") == job["hash"]:
                rows[i] = joblib.row(r["job"], st)
        summary = pd.DataFrame(rows, columns=COLUMNS)
        summary.to_csv(out / "summary.csv", index=False)
    log(summary.fillna("").to_string(index=False))
    return summary


def batch_status(out_dir):
    """Every job of a batch directory from its status.json (not from the scheduler), a DataFrame of STATUS_COLUMNS."""
    import pandas as pd
    if not Path(out_dir).is_dir():
        raise FileNotFoundError(f"batch directory {out_dir} not found")
    rows = []
    for path in sorted(Path(out_dir).glob("*/status.json")):
        st = joblib.read_status(path.parent) or {"state": "unreadable"}
        p = st.get("progress")
        rows.append([path.parent.name, st.get("state"), st.get("attempts"), st.get("seconds"),
                     st.get("cuda_visible_devices"), joblib.progress_line(p) if p else None, st.get("error"),
                     st.get("slurm_job_id")])
    return pd.DataFrame(rows, columns=STATUS_COLUMNS)
