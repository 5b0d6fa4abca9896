"""RunConfig: every knob of one run (CLOSE §4 training setup, reference quirks of §8 as switches).

One frozen dataclass; YAML in, YAML out. Unknown keys and bad values fail with one line naming the fix.
The defaults are the mini CLOSE run on the embedded data (minutes on a laptop CPU, = params/nb201/mini-close.yaml);
the reference's full scale is params/nb201/paper-close.yaml.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

CHOICES = {
    "supernet": ("vanilla", "close"),
    "router": ("node", "arch", "random"),
    "mlp_growth": ("inherit", "only_last", "full"),
    "wit_from": ("prev", "random"),
    "mlp_parent": ("prev", "wit"),
    "gate_forward": ("all", "others_no_grad", "selected"),
    "eval_routing": ("argmax", "gumbel"),
    "bn_mode": ("batch", "recalibrate"),
    "cl_criteria": ("pre", "max"),
    "head_norm": ("none", "mean"),
    "gate_embed_norm": ("none", "layernorm", "l2"),
    "gate_gcn_init": ("uniform", "norm_preserving"),
}
# GATE variants beyond the paper (closekit.gates) and their reference values; spaces without a GATE refuse others
GATE_VARIANT = {"gate_embed_norm": "none", "gate_gcn_init": "uniform", "gate_edge_op": False}


@functools.cache
def unique_keys(loader):
    """A subclass of the PyYAML ``loader`` that refuses a mapping key given twice (PyYAML keeps the last one)."""
    def mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return loader.construct_mapping(self, node, deep)
    cls = type(f"Unique{loader.__name__}", (loader,), {})
    cls.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return cls


def read_yaml(path, kind="params file", loader=yaml.SafeLoader):
    """The mapping a YAML file holds; one-line FileNotFoundError / ValueError (bad YAML, a key twice, no mapping)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} {path} not found; pass an existing YAML file")
    try:
        d = yaml.load(path.read_text(), Loader=unique_keys(loader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{kind} {path} is not valid YAML{where}: {getattr(e, 'problem', None) or e}; "
                         "fix the file") from None
    if d is not None and not isinstance(d, dict):
        raise ValueError(f"{kind} {path} must hold a mapping of keys, got {type(d).__name__}")
    return d or {}


def _fits(v, t):
    """Does value ``v`` fit the annotation name ``t`` (int, float, str, bool, tuple of ints, None)?"""
    if t == "None":
        return v is None
    if t == "tuple":
        return isinstance(v, (list, tuple)) and all(_fits(x, "int") for x in v)
    if t in ("int", "float") and isinstance(v, bool):
        return False
    return isinstance(v, {"int": int, "float": (int, float), "str": str, "bool": bool}[t])


# keys that do not change the trained weights
NOT_TRAINING = ("archs", "arch_seed", "eval_routing", "eval_seed", "bn_mode", "recal_batches", "eval_batch_size",
                "eval_max_batches", "eval_every", "eval_every_archs", "truth", "out_dir", "save_every")


class YamlConfig:
    """YAML in / YAML out for frozen config dataclasses; unknown keys, wrong types, broken YAML and missing
    files fail in one line naming the key or file, the value and what is expected."""
    kind, file_kind = "config", "params"      # words used in error messages

    def _check_types(self):
        """Every field against its annotation (ints accepted as floats and stored as floats; lists as tuples)."""
        for f in fields(self):
            v, types = getattr(self, f.name), [t.strip() for t in str(f.type).split("|")]
            if not any(_fits(v, t) for t in types):
                want = " or ".join("null" if t == "None" else "a list of ints" if t == "tuple" else
                                   f"a{'n' * (t[0] in 'aeiou')} {t}" for t in types)
                raise ValueError(f"{self.kind} {f.name}={v!r} must be {want}")
            if "float" in types and isinstance(v, int):
                object.__setattr__(self, f.name, float(v))
            if "tuple" in types and v is not None:
                object.__setattr__(self, f.name, tuple(v))

    @classmethod
    def from_dict(cls, d, source=None):
        """Build from a plain dict; unknown keys and bad values raise one line naming ``source``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown {cls.kind} key(s) {', '.join(unknown)} in {source or cls.kind}; "
                             f"known keys: {', '.join(sorted(known))}")
        try:
            return cls(**d)
        except ValueError as e:
            raise ValueError(f"{source}: {e}" if source else str(e)) from None

    @classmethod
    def from_yaml(cls, path=None, **overrides):
        """Load a YAML file (None: the defaults); ``overrides`` win."""
        d = {} if path is None else read_yaml(path, f"{cls.file_kind} file")
        source = f"{cls.file_kind} file {path}" if path else None
        if overrides:
            source = f"{source} with overrides {', '.join(overrides)}" if source else f"overrides {', '.join(overrides)}"
        return cls.from_dict({**d, **overrides}, source=source)

    def to_dict(self):
        """Plain dict with lists for tuples (YAML/JSON friendly)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_yaml(self, path=None):
        """YAML text; also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return self.from_dict({**dataclasses.asdict(self), **changes})


@dataclass(frozen=True)
class DataKeys:
    """What a run (RunConfig) and a stand-alone recipe (groundtruth.recipe.Recipe) train on: one definition."""
    space: str = "nb201"
    dataset: str = "embedded"          # closekit.data registry: embedded | fashion-mnist | cifar10 | synthetic
    data_dir: str | None = None        # dataset files (None: the dataset's default place)
    download: bool = False             # torchvision download for cifar10
    image_size: int | None = 12        # None: native resolution
    channels: int | None = None        # None: native channels; 3 repeats a grey channel
    train_portion: float = 0.8         # first part of the training set trains, the rest scores
    train_limit: int | None = None     # keep only the first n training images
    augment: bool = True               # random crop + flip on training batches

    def data_kwargs(self):
        """The keyword arguments of ``closekit.data.load(self.dataset, ...)``."""
        return dict(root=self.data_dir, image_size=self.image_size, channels=self.channels, download=self.download,
                    train_portion=self.train_portion, train_limit=self.train_limit, augment=self.augment)


@dataclass(frozen=True)
class RunConfig(DataKeys, YamlConfig):
    """One run: space, data (DataKeys), supernet, sharing curriculum, optimisation, scoring, ground truth."""
    # supernet
    supernet: str = "close"            # vanilla: one block per edge, fixed router; close: GLOW bank + GATE
    channels_init: int = 8             # C: cell channels of the first stage (then 2C, 4C); paper 16
    cells_per_stage: int = 2           # N; paper 5
    dropout: float = 0.1               # before the classifier
    # CLOSE sharing (ignored by vanilla)
    num_blocks: int = 5                # GLOW blocks per cell
    cl_schedule: tuple = (1, 7, 13, 19, 25)  # epoch at which block k becomes active; paper 1/201/401/601/801
    router: str = "node"               # node-level GATE | arch-level GATE | random one-hot
    gumbel_temperature: float = 5.0
    gates_op_dim: int = 48
    gates_node_dim: int = 48
    gates_hidden: int = 96
    gates_gcn_dims: tuple = (128, 128, 128, 128, 128)
    mlp_hidden: tuple = (200, 200, 200)
    mlp_dropout: float = 0.1
    mlp_growth: str = "inherit"        # inherit: new row += parent row; only_last / full: re-init
    mlp_parent: str = "prev"           # the inherited MLP row: the previous block's (reference) or the WIT parent's
    wit_from: str = "prev"             # WIT parent: previous block or a random earlier one
    cl_criteria: str = "pre"           # NDS split table: split the shallowest long group (pre, reference) or the
                                       # longest (max); cell spaces ignore it
    wit_buffers: bool = True           # NDS WIT over the whole state dict, BN running stats summed (reference), or
                                       # parameters only (false); the cell spaces always sum both
    head_norm: str = "none"            # NDS: the pooled features go to the FC as they are (reference) or centred by a
                                       # mean-only batch norm (mean); the cell spaces refuse mean
    gate_forward: str | None = None    # GATE spaces: all (reference) | others_no_grad (None: this one; same updates,
                                       # less work) | selected; spaces without a GATE (NDS) refuse any value
    aw_nas_compat: bool = False        # reproduce orphaned GATE params and level-1 GATE weight decay
    keep_zero_grads: bool = False      # torch-1.x zero_grad (reference): a param once used keeps a zero grad, so SGD's
                                       # weight decay and momentum move it every step, sampled or not
    gate_lr_scale: float = 1.0         # GATE learning rate = lr x this (reference: 1, one optimizer for all)
    gate_weight_decay: float | None = None  # GATE weight decay (None: weight_decay, as the reference)
    gate_embed_norm: str = "none"      # GATE node embeddings before the MLP: as they are (reference) | layernorm | l2
    gate_gcn_init: str = "uniform"     # GATE GCN weights: U(+-1/sqrt(out)) (reference) | norm_preserving
    gate_edge_op: bool = False         # node-level GATE MLP also sees the edge's own op, one-hot (needs router: node)
    # optimisation
    epochs: int = 30                   # paper 1000
    batch_size: int = 256
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float | None = 5.0
    plateau_factor: float = 0.5
    plateau_patience: int = 3          # paper 30
    srt_epochs: tuple = (13,)          # learning-rate restarts (new optimizer and scheduler); paper 401
    seed: int = 20
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    deterministic: bool = False        # deterministic GPU kernels: bitwise-exact resume on cuda, slower
    save_every: int = 5                # checkpoint period in epochs (the last epoch is always saved)
    # scoring
    archs: str = "truth"               # all | valid | sample:N | truth | a text file of arch strings
    arch_seed: int = 0
    eval_routing: str = "argmax"       # argmax (deterministic) | gumbel (reference: sampled, seeded)
    eval_seed: int = 123
    bn_mode: str = "batch"             # batch statistics (reference) | recalibrate running stats
    recal_batches: int = 10
    eval_batch_size: int = 256
    eval_max_batches: int | None = None
    eval_every: int = 0                # score a small arch sample every n epochs (0: never)
    eval_every_archs: int = 50
    # ground truth and output
    truth: str | None = "mini-nb201"   # closekit.groundtruth.load spec: shipped name, CSV, minibench dir, official file
    out_dir: str = "runs/nb201-mini-close"

    def __post_init__(self):
        self._check_types()
        for name, options in CHOICES.items():
            if getattr(self, name) not in options and not (name == "gate_forward" and self.gate_forward is None):
                raise ValueError(f"config {name}={getattr(self, name)!r} is not one of {', '.join(options)}")
        if self.gate_edge_op and self.router == "arch":
            raise ValueError("config gate_edge_op=true needs router: node (the arch-level GATE maps one embedding to "
                             "every edge, it has no per-edge input); set router: node or gate_edge_op: false")
        sched = self.cl_schedule
        if self.supernet == "close":
            if len(sched) != self.num_blocks:
                raise ValueError(f"config cl_schedule has {len(sched)} epochs but num_blocks={self.num_blocks}; "
                                 "give one start epoch per GLOW block")
            if list(sched) != sorted(sched) or sched[0] != 1:
                raise ValueError(f"config cl_schedule={list(sched)} must be sorted and start at epoch 1")
        if not 0 < self.train_portion < 1:
            raise ValueError(f"config train_portion={self.train_portion} must be in (0, 1): the rest of the training "
                             "set is the held-out split that scores architectures")
        for name in ("epochs", "batch_size", "channels_init", "cells_per_stage", "num_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"config {name}={getattr(self, name)} must be >= 1")

    def gate_variant(self):
        """The GATE variant keys set away from the reference ({} for the paper's GATE)."""
        return {k: getattr(self, k) for k, v in GATE_VARIANT.items() if getattr(self, k) != v}

    def training(self):
        """The keys that shape the trained weights (a checkpoint resumes only under the same ones; the scoring,
        ground-truth and output keys may change, so a finished run can be re-scored without retraining)."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_TRAINING}


def resolve_device(name):
    """'auto' -> cuda when available else cpu."""
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name

