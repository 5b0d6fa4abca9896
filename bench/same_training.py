"""Do two code versions train alike? A short curriculum run's state-dict digest, to compare across checkouts.

Run it once per checkout (PYTHONPATH picks the package) and compare the digests: equal digests mean bitwise-equal
weights after four curriculum events, WIT and the LR restart, so a cached bench row of one code version stands for
the other's.

    PYTHONPATH=/path/to/old/checkout python bench/same_training.py /tmp/a
    PYTHONPATH=. python bench/same_training.py /tmp/b                  # ~1 min each on one thread
"""
import argparse
import hashlib
from pathlib import Path

import torch

from closekit import run
from closekit.config import RunConfig
from closekit.run import code_version

ROOT = Path(__file__).resolve().parents[1]


def digest(net):
    """sha256 (16 hex) over the state dict's names and bytes; names as before the Sharing object held the router and
    the level ("sharing.router.x" -> "router.x"), so that digests compare across that change."""
    h = hashlib.sha256()
    for k, v in sorted((k.removeprefix("sharing."), v) for k, v in net.state_dict().items()):
        h.update(k.encode() + v.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="run directory (fresh)")
    p.add_argument("--params", default="params/nb201/mini-close.yaml")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = RunConfig.from_yaml(ROOT / args.params, epochs=8, train_limit=1500, num_blocks=5, cl_schedule=[1, 3, 5, 6, 7],
                              srt_epochs=[5], archs="sample:20", truth=None)
    res = run(cfg, Path(args.out), log=lambda *a, **k: None, keep_snapshots=False)
    print(f"code {code_version(cfg.space)}: weights {digest(res.net)}, last train loss "
          f"{res.history['train_loss'].iloc[-1]:.6f}")


if __name__ == "__main__":
    main()
