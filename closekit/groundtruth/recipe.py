"""The stand-alone training recipe of a mini ground truth (CLOSE §4 ranking: one recipe, several seeds per arch);
its data keys are ``config.DataKeys``, shared with ``RunConfig``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..config import DataKeys, YamlConfig

ADDED = ("drop_path", "download")        # fields newer than the first shipped ground truth: hashed only when set
NAMED = ("space", "dataset", "image_size", "C", "N", "epochs")      # spelled out in the version tag
UNHASHED = ("device", "threads")         # where it ran, not what was trained (meta.yaml records the machine)


@dataclass(frozen=True)
class Recipe(DataKeys, YamlConfig):
    """Stand-alone training: SGD (Nesterov), cosine learning rate per step down to 0, the space's net scaled down."""
    kind = file_kind = "recipe"
    image_size: int | None = 16        # None: native resolution
    train_portion: float = 1.0         # stand-alone nets train on the whole training set
    C: int = 8                         # channels of the first stage
    N: int = 1                         # cells per stage
    epochs: int = 8
    eval_split: str = "test"           # test (official test set) | valid (needs train_portion < 1)
    eval_limit: int | None = None      # first n images of the eval split (None: all)
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    drop_path: float = 0.0             # drop-path probability of the stand-alone cells (spaces that have it: NB301)
    device: str = "cpu"                # cuda with workers > 1: one worker per GPU
    threads: int = 1                   # torch threads per worker

    def __post_init__(self):
        self._check_types()
        if self.eval_split not in ("test", "valid"):
            raise ValueError(f"recipe eval_split={self.eval_split!r} is not one of test, valid")
        for name in ("C", "N", "epochs", "batch_size", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"recipe {name}={getattr(self, name)} must be >= 1")
        if not 0 <= self.drop_path < 1:
            raise ValueError(f"recipe drop_path={self.drop_path} must be in [0, 1)")
        if not 0 < self.train_portion <= 1:
            raise ValueError(f"recipe train_portion={self.train_portion} must be in (0, 1]")

    def version(self, n_seeds):
        """The ground truth's name, e.g. mini-nb201-embedded16-c8n1-e8-s2 (+ a hash when other fields differ)."""
        v = f"mini-{self.space}-{self.dataset}{self.image_size or ''}-c{self.C}n{self.N}-e{self.epochs}-s{n_seeds}"
        base = Recipe().to_dict()                  # space: named in the prefix, kept out of the hash (old tags hold)
        rest = {k: v for k, v in self.to_dict().items() if k != "space" and not (k in ADDED and v == base[k])}
        if any(rest[k] != base[k] for k in rest if k not in NAMED + UNHASHED):
            v += "-" + hashlib.sha1(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:6]
        return v
