"""Stand-alone trainings in this process or in a pool of spawned workers that die with the build: each asks the
kernel to kill it when its parent dies (Linux ``PR_SET_PDEATHSIG``), and SIGTERM exits quietly through the pool's
own shutdown (``stop_on_sigterm``: no worker left, no BrokenPipe tracebacks, no leaked semaphores).
"""
import ctypes
import multiprocessing as mp
import os
import signal
import sys
from contextlib import contextmanager

import torch

from .standalone import load_data, train_one

PR_SET_PDEATHSIG = 1                     # linux/prctl.h
SIGTERM_EXIT = 128 + signal.SIGTERM      # the shell's exit status of a process ended by SIGTERM
_W = {}                                  # worker state: recipe, device, data (or the error of loading them)


def _die_with(parent):
    """Have the kernel SIGKILL this process when ``parent`` exits (no-op where prctl is missing)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:           # the parent died before prctl took effect
        os._exit(1)


def _init_worker(recipe, devices, parent):
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # the parent decides; Ctrl-C reaches the whole group
    signal.signal(signal.SIGTERM, signal.SIG_DFL)     # a terminated worker ends without a traceback
    _die_with(parent)
    try:
        torch.set_num_threads(recipe.threads)
        _W.update(recipe=recipe, device=devices.get(), data=load_data(recipe))
    except Exception as e:              # a failing Pool initializer would be respawned forever: fail in _work
        _W["error"] = e


def _work(job):
    if "error" in _W:
        raise _W["error"]
    return train_one(*job, _W["recipe"], _W["data"], device=_W["device"])


def run(jobs, recipe, workers):
    """Yield train_one results: in this process (workers=1) or from a spawn Pool, one GPU per worker on cuda."""
    if workers <= 1 or len(jobs) <= 1:
        data, threads = load_data(recipe), torch.get_num_threads()
        torch.set_num_threads(recipe.threads)
        try:
            for job in jobs:
                yield train_one(*job, recipe, data)
        finally:
            torch.set_num_threads(threads)
        return
    ctx = mp.get_context("spawn")
    devices, cuda = ctx.Queue(), recipe.device == "cuda"
    for i in range(workers):            # untested on GPUs
        devices.put(f"cuda:{i % max(torch.cuda.device_count(), 1)}" if cuda else recipe.device)
    with ctx.Pool(workers, _init_worker, (recipe, devices, os.getpid())) as pool:   # exit: terminate()
        yield from pool.imap_unordered(_work, jobs)


@contextmanager
def stop_on_sigterm():
    """SIGTERM inside the block exits quietly with status 143 (SystemExit unwinds the pool and the row writer)."""
    def stop(signum, frame):
        raise SystemExit(SIGTERM_EXIT)
    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        sys.stderr.flush()
