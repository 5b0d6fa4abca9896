"""Best-effort progress of a running job for ``closekit batch``: ``report`` writes {"phase", "done", "total", "time",
**extra} atomically to the file $CLOSEKIT_PROGRESS names (nothing without it; at most one write a second within a
phase, a new phase and ``done == total`` always), ``read`` reads it back. Phases: build, train, score, rank, done.
On a terminal (not under batch) ``bar`` shows the batches of an epoch and the scoring in a tqdm bar.
"""
import contextlib
import json
import os
import sys
import time

from .checkpoint import atomic_json

ENV = "CLOSEKIT_PROGRESS"
MIN_INTERVAL = 1.0  # seconds between two writes of the same phase
_last = dict(path=None, phase=None, time=None)  # the last write attempted


def report(phase, done=None, total=None, **extra):
    """Write the progress to $CLOSEKIT_PROGRESS unless unset or rate-limited; True when written."""
    path = os.environ.get(ENV)
    if not path:
        return False
    now = time.time()
    same = path == _last["path"] and phase == _last["phase"] and _last["time"] is not None
    if same and 0 <= now - _last["time"] < MIN_INTERVAL and not (done is not None and done == total):
        return False
    _last.update(path=path, phase=phase, time=now)
    with contextlib.suppress(OSError):
        atomic_json(path, {"phase": phase, "done": done, "total": total, "time": now, **extra})
        return True
    return False


def interactive():
    """Is a person watching stdout (a terminal, not a batch job that reads ``report``)?"""
    return sys.stdout.isatty() and not os.environ.get(ENV)


def bar(iterable, total=None, desc=None, show=None):
    """``iterable`` inside a transient tqdm bar when ``show`` (None: ``interactive()``), else ``iterable`` itself."""
    if not (interactive() if show is None else show):
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stdout, dynamic_ncols=True)


def read(path):
    """The progress dict at ``path``; None when missing, unreadable or half-written."""
    with contextlib.suppress(OSError, ValueError), open(path) as f:
        p = json.load(f)
        return p if isinstance(p, dict) else None
