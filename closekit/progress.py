"""Best-effort progress of a running job, for ``closekit batch`` to show: ``report`` writes one small JSON file,
the one $CLOSEKIT_PROGRESS names (batch sets it to <job dir>/progress.json), and ``read`` reads it back.

    {"phase": "train", "done": 12, "total": 30, "time": 1718000000.0, **extra}

Without the variable ``report`` does nothing. Writes are atomic and at most one a second within a phase (a new
phase and ``done == total`` are always written); an OSError never reaches the caller. Phases of the training
pipeline: build, train (epochs), score (architectures), rank, done.

On a terminal (stdout a TTY and no $CLOSEKIT_PROGRESS, i.e. not under ``closekit batch``) ``bar`` wraps the batches
of an epoch and the architectures being scored in a tqdm bar with rate and time left; elsewhere it returns them as
they are.
"""
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
    try:
        atomic_json(path, {"phase": phase, "done": done, "total": total, "time": now, **extra})
        return True
    except OSError:
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
    try:
        with open(path) as f:
            p = json.load(f)
    except (OSError, ValueError):
        return None
    return p if isinstance(p, dict) else None
