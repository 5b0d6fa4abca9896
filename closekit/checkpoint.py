"""Checkpoint and snapshot files of a run (CLOSE §4 training; exact resume): names, atomic writes, reading,
rebuilding a supernet from any checkpoint, and the run directory's lock. torch is imported only where a file needs
it, so config and CLI stay light.

    out_dir/checkpoint.pt               the full training state (train.Trainer.state_dict), rewritten atomically
    out_dir/snapshots/epoch-NNNN.pt     the net at chosen epochs: epoch, config, net_args, model
    out_dir/.lock                       flock'd by the run writing there, holds its pid (``locked``)
"""
import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

CKPT = "checkpoint.pt"
SNAPSHOTS = "snapshots"
LOCK = ".lock"
FILE_MODE = 0o666       # new files get this less the umask, as open() would give them


def atomic_write(path, write):
    """``write(tmp_path)`` to a temporary file beside ``path``, fsync, rename over ``path``: a crash leaves the old
    file or the new one, never half of one. The one atomic write of the package."""
    path, umask = Path(path), os.umask(0)
    os.umask(umask)                                 # read by setting it and putting it back
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, FILE_MODE & ~umask)              # mkstemp makes 0600; others read a run as the umask allows
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def atomic_save(obj, path):
    """torch.save, atomically."""
    import torch
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_text(path, text):
    """Write text, atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_json(path, obj):
    """Write JSON (indented), atomically."""
    return atomic_text(path, json.dumps(obj, indent=1, default=str))


def check_training_keys(saved, cfg, path):
    """Refuse to resume a run whose checkpoint (config dict ``saved``) was trained with other training keys."""
    old, new = type(cfg).from_dict(saved, f"checkpoint {path}").training(), cfg.training()
    diff = sorted(k for k in new if old.get(k) != new[k])
    if diff:
        raise ValueError(f"checkpoint {path} was trained with other values of {', '.join(diff)}; "
                         "use a new out_dir or the same training keys (scoring keys may differ)")


def read_checkpoint(path):
    """The dict saved by Trainer.save or a snapshot (tensors on the CPU, memory-mapped); an unreadable file (e.g.
    truncated by a full disk) is one ValueError naming it and the fix."""
    import pickle
    import torch
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise ValueError(f"checkpoint {path} is unreadable ({str(e).splitlines()[0]}); it may be truncated: "
                         "start over with --no-resume (resume=False) or delete it") from None


def writable_dir(path, what="output directory"):
    """Refuse, in one line, a directory that cannot be created or written (a file, under a file, read-only)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file; pass a directory path")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{what} {path} lies under the file {parent}; pass a path under a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path} cannot be written ({parent} is read-only); pass a writable path")
    return path


@contextlib.contextmanager
def locked(run_dir):
    """Hold the run directory's lock (the kernel drops it with its process); a second holder is refused in one line."""
    run_dir = writable_dir(run_dir, "run directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise RuntimeError(f"run directory {run_dir} is in use by another run (pid {owner}); wait for it to "
                               "end or pass another --out / out_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield run_dir
    finally:
        os.close(fd)


def snapshot(trainer):
    """What a snapshot holds: epoch, config, the supernet's net_args and its state."""
    return {"epoch": trainer.epoch, "config": trainer.cfg.to_dict(), "net_args": trainer.net.net_args,
            "model": trainer.net.state_dict()}


def load_net(path, device="cpu"):
    """(supernet in eval mode, RunConfig, epoch) rebuilt from a checkpoint or snapshot file."""
    from . import spaces
    from .config import RunConfig
    state = read_checkpoint(path)
    if "net_args" not in state:
        raise ValueError(f"checkpoint {path} predates closekit's net_args record; train the run again")
    cfg = RunConfig.from_dict(state["config"], f"checkpoint {path}")
    net = spaces.get(cfg.space).supernet(cfg, **state["net_args"])
    net.load_state_dict(state["model"])
    return net.to(device).eval(), cfg, int(state["epoch"])
