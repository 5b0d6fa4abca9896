"""Checkpoint and snapshot files of a run (CLOSE §4 training; exact resume): names, atomic writes, reading, and
rebuilding a supernet from any checkpoint. Training, scoring, routing views and widgets read runs through here.

    out_dir/checkpoint.pt               the full training state (train.Trainer.state_dict), rewritten atomically
    out_dir/snapshots/epoch-NNNN.pt     the net at chosen epochs: epoch, config, net_args, model
"""
import json
import os
import tempfile
from pathlib import Path

import torch

CKPT = "checkpoint.pt"
SNAPSHOTS = "snapshots"


def atomic_write(path, write):
    """Call ``write(tmp_path)`` on a fresh temporary file beside ``path``, fsync it, then rename it over ``path``:
    a crash leaves the old file or the new one, never half of one. The one atomic write of the package."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    """The dict saved by Trainer.save or a snapshot (tensors on the CPU, memory-mapped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    return torch.load(path, map_location="cpu", mmap=True, weights_only=False)


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
