"""Child processes of a runner (the batch and SLURM engines): each in a session of its own, a wall-clock timeout,
SIGTERM of the runner as Ctrl-C, the Jupyter kernel spec they run under. Every process of a job carries TAG=<job dir>
in its environment, so ``stop_tagged`` ends a job (timeout, Ctrl-C, or what a runner killed with -9 left behind);
that runner's papermill dies with it (Linux: PR_SET_PDEATHSIG) and ipykernel leaves when its parent is gone.
"""
import contextlib
import math
import os
import signal
import subprocess
import sys
import threading
import time

GRACE = 5.0  # seconds between SIGTERM and SIGKILL
TAG = "CLOSEKIT_JOB"  # environment variable naming the job directory in every process of a job
# papermill under a parent-death signal: set in the child itself (a preexec_fn is unsafe in a threaded runner);
# prctl(PR_SET_PDEATHSIG=1, SIGKILL), then exit at once if the runner is already gone, then exec papermill
DEATHSIG = ("import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGKILL); "
            "os.getppid() == int(sys.argv[1]) or os._exit(1); "
            "os.execv(sys.executable, [sys.executable] + sys.argv[2:])")
POLL = 1.0  # seconds between two on_poll calls of a running child
_live, _live_lock = {}, threading.Lock()  # running children -> their TAG, stopped by stop_all
_stopping = threading.Event()  # set while a stopped runner ends its children: no new one starts


def kernel_python(kernel="python3"):
    """The python that Jupyter kernel spec ``kernel`` launches under papermill; None if there is no such spec."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    try:
        exe = KernelSpecManager().get_kernel_spec(kernel).argv[0]
    except NoSuchKernel:
        return None
    v = sys.version_info  # jupyter_client runs a bare "python" argv with the launching interpreter
    return sys.executable if exe in ("python", f"python{v[0]}", f"python{v[0]}.{v[1]}") else exe


def ensure_kernel(kernel="python3"):
    """Install this python's ipykernel spec as ``kernel`` (--sys-prefix) if missing; fail if it runs another python."""
    if kernel_python(kernel) is None:
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", kernel], check=True,
                       stdout=subprocess.DEVNULL)
    exe = kernel_python(kernel)
    if exe is None or os.path.abspath(exe) != os.path.abspath(sys.executable):
        raise RuntimeError(f"kernel spec {kernel!r} runs {exe}, not {sys.executable}: remove it or put a spec of this "
                           f"python first on JUPYTER_PATH ({sys.executable} -m ipykernel install --prefix DIR)")
    return kernel


def check_kernel(kernel, log=print):
    """Refuse a missing kernel spec; note one that runs another python."""
    exe = kernel_python(kernel)
    if exe is None:
        raise ValueError(f"no Jupyter kernel spec {kernel!r}; install one: "
                         f"{sys.executable} -m ipykernel install --sys-prefix --name {kernel}")
    if os.path.abspath(exe) != os.path.abspath(sys.executable):
        log(f"note: kernel {kernel!r} runs {exe}, not {sys.executable}")


def spawn(cmd, env, logf, timeout, on_poll=None):
    """Run ``cmd`` in its own session, ``on_poll()`` every POLL s; its exit code, None when killed past ``timeout``."""
    if sys.platform.startswith("linux") and cmd[0] == sys.executable:
        cmd = [sys.executable, "-c", DEATHSIG, str(os.getpid())] + cmd[1:]
    with _live_lock:
        if _stopping.is_set():
            return -signal.SIGTERM
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        _live[proc] = env[TAG]
    deadline = time.monotonic() + (math.inf if timeout is None else timeout)
    try:
        while True:
            left = deadline - time.monotonic()
            try:
                return proc.wait(timeout=max(0.0, min(POLL, left)))
            except subprocess.TimeoutExpired:
                if left <= POLL:
                    stop_tagged(env[TAG])
                    proc.wait()
                    return None
            if on_poll is not None:
                on_poll()
    finally:
        with _live_lock:
            _live.pop(proc, None)


def stop_tagged(value, grace=GRACE):
    """SIGTERM every other process with TAG=``value``, SIGKILL those alive ``grace`` s later; how many there were."""
    import psutil

    def alive(p):
        with contextlib.suppress(psutil.Error):
            return p.status() != psutil.STATUS_ZOMBIE
        return False

    def tagged(p):
        with contextlib.suppress(psutil.Error, OSError):
            return p.pid != os.getpid() and p.environ().get(TAG) == value
    left = found = [p for p in psutil.process_iter() if tagged(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        deadline = time.monotonic() + grace
        while any(alive(p) for p in left) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return len(found)


def stopping():
    """True while ``stop_all`` is ending the children (a child that ended now was stopped, not failed)."""
    return _stopping.is_set()


@contextlib.contextmanager
def stop_all(grace=1.0):
    """End every running child's process tree; no new child starts until the block is left."""
    _stopping.set()
    try:
        with _live_lock:
            running = list(_live.items())
        for proc, tag in running:
            stop_tagged(tag, grace)
            proc.wait()
        yield
    finally:
        _stopping.clear()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt in the main thread while inside (``kill <runner>`` stops jobs as Ctrl-C)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
