"""``closekit batch``: one notebook over many params sets (CLOSE's seeds x variants), each job run by closekit.jobs;
``run_batch`` checks everything before any work, picks the engine (local here: one job per GPU id or CPU slot at a
time; slurm: one job array, closekit.slurm) and writes out_dir/summary.csv from the jobs' status.json, so two runners
on one directory agree. ``batch_status`` reads every job's status.json. Ctrl-C or SIGTERM of the runner ends every
job's process tree and marks it interrupted (a rerun resumes it).
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


def gpu_slots(gpus):
    """Job slots of ``gpus`` ("0,1" or ids), refused in one line when this machine has no such CUDA GPU."""
    ids = [str(g).strip() for g in (gpus.split(",") if isinstance(gpus, str) else gpus) if str(g).strip()]
    if not ids:
        raise ValueError(f"--gpus {gpus!r} names no GPU; give ids such as 0,1 (or --cpu-slots N)")
    n = len(list(GPU_DIR.iterdir())) if GPU_DIR.is_dir() else _nvidia_smi_count()
    bad = [g for g in ids if g.isdigit() and int(g) >= n or not g.isdigit() and n == 0]
    if bad:
        raise ValueError(f"--gpus {','.join(ids)}: this machine has {n or 'no'} CUDA GPU(s) ({GPU_DIR}), so no GPU "
                         f"{', '.join(bad)}; use --cpu-slots N without a GPU")
    return ids


def _nvidia_smi_count():
    """GPUs ``nvidia-smi -L`` lists (0 without it): where the driver's /proc entries are not visible."""
    if shutil.which("nvidia-smi") is None:
        return 0
    r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return sum(x.startswith("GPU ") for x in r.stdout.splitlines()) if r.returncode == 0 else 0


def run_batch(notebook, params_files_or_dicts, out_dir, opts=None, *, gpus=None, cpu_slots=1, log=print, grid=None,
              engine="local", slurm=None, **options):
    """Run ``notebook`` once per params file/dict (times every ``grid`` point: [(key, values)] or ["key=v1,v2"])
    under ``out_dir``; the summary DataFrame (one row per job). ``opts``: JobOptions (or its fields as keywords).
    ``engine``: local (``gpus`` ids or ``cpu_slots`` of this machine) or slurm (``slurm``: the options of
    closekit.slurm.run_array: partition, gpus_per_job, max_parallel, options)."""
    opts = opts or JobOptions(**options)
    known = joblib.notebook_parameters(notebook)
    check_out(out_dir)
    if engine == "slurm":
        slurmlib.check(**(slurm or {}))
        if gpus is not None:
            raise ValueError("--gpus picks this machine's GPUs; with --engine slurm use --gpus-per-job N")
    elif engine == "local":
        slots = gpu_slots(gpus) if gpus is not None else [""] * int(cpu_slots)
        if not slots:
            raise ValueError(f"--cpu-slots {cpu_slots} must be >= 1")
    else:
        raise ValueError(f"engine {engine!r} is not one of local, slurm")
    if grid and isinstance(grid[0], str):
        grid = parse_grid(grid, notebook, known)
    jobs = joblib.make_jobs(notebook, params_files_or_dicts, Path(out_dir).resolve(), grid)
    procs.check_kernel(opts.kernel, log)
    with procs.sigterm_as_interrupt():
        if engine == "slurm":
            rows = slurmlib.run_array(jobs, notebook, out_dir, opts, log, **(slurm or {}))
        else:
            rows = run_local(jobs, notebook, opts, log, slots, threads=None if gpus is not None else
                             max(1, (os.cpu_count() or 1) // len(slots)))    # CPU slots share the cores
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
    """The summary DataFrame, also out_dir/summary.csv (written under a lock) and logged; a job another runner held
    gets the state its status.json has now, so the last summary written is right whichever runner wrote it."""
    import pandas as pd
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".summary.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        summary = pd.DataFrame([_merged(j, r) for j, r in zip(jobs, rows)], columns=COLUMNS)
        summary.to_csv(out / "summary.csv", index=False)
    log(summary.fillna("").to_string(index=False))
    return summary


def _merged(job, r):
    """Row ``r``, or the job's status.json row when another runner held the job and has finished it."""
    st = joblib.read_status(job["dir"])
    done = st.get("state") in joblib.DONE and st.get("params_hash") == job["hash"]
    return joblib.row(r["job"], st) if r["state"] == "locked" and done else r


def batch_status(out_dir):
    """Every job of a batch directory from its status.json (not from the scheduler): a DataFrame of job, state,
    attempts, seconds, gpu, progress, error, slurm_job_id."""
    import pandas as pd
    rows = []
    for st_path in sorted(Path(out_dir).glob("*/status.json")):
        st = joblib.read_status(st_path.parent) or {"state": "unreadable"}
        p = st.get("progress")
        rows.append(dict(job=st_path.parent.name, state=st.get("state"), attempts=st.get("attempts"),
                         seconds=st.get("seconds"), gpu=st.get("cuda_visible_devices"),
                         progress=joblib.progress_line(p) if p else None, error=st.get("error"),
                         slurm_job_id=st.get("slurm_job_id")))
    if not rows and not Path(out_dir).is_dir():
        raise FileNotFoundError(f"batch directory {out_dir} not found")
    return pd.DataFrame(rows, columns=["job", "state", "attempts", "seconds", "gpu", "progress", "error",
                                       "slurm_job_id"])
