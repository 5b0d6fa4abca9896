"""RunConfig: every knob of one run (CLOSE §4 training setup, the reference quirks of §8 as switches).

One frozen dataclass, YAML in and out; unknown keys and bad values fail in one line. The defaults are the mini CLOSE
run on the embedded data (= params/nb201/mini-close.yaml); the paper's scale is params/nb201/paper-close.yaml.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

CHOICES = {
    "supernet": ("vanilla", "close"),
    "gate_level": ("node", "arch"),
    "mlp_growth": ("inherit", "only_last", "full"),
    "wit_from": ("prev", "random"),
    "mlp_parent": ("prev", "wit"),
    "gate_forward": ("all", "others_no_grad", "selected"),
    "eval_routing": ("argmax", "gumbel"),
    "bn_mode": ("batch", "recalibrate"),
    "cl_criteria": ("pre", "max"),
    "head_norm": ("none", "mean"),
    "sampler": ("uniform", "sandwich"),
    "gate_embed_norm": ("none", "layernorm", "l2"),
    "gate_gcn_init": ("uniform", "norm_preserving"),
    "score": ("acc", "loss"),
}
# GATE variants beyond the paper (closekit.gates), the reference at their defaults; spaces without a GATE refuse others
GATE_VARIANT = ("gate_embed_norm", "gate_gcn_init", "gate_edge_op")
# value domains beyond the type: (lowest allowed, is the lowest itself allowed); None passes, every float is finite
AT_LEAST = {**dict.fromkeys(("epochs", "batch_size", "channels_init", "cells_per_stage", "num_blocks", "image_size",
                             "channels", "train_limit", "save_every", "recal_batches", "eval_batch_size",
                             "eval_max_batches", "eval_every_archs"), (1, True)),
            **dict.fromkeys(("plateau_patience", "eval_every", "momentum", "weight_decay", "dropout", "mlp_dropout",
                             "gate_lr_scale", "gate_weight_decay"), (0, True)),
            **dict.fromkeys(("lr", "gumbel_temperature", "plateau_factor", "grad_clip"), (0, False))}
# keys that do not change the trained weights
NOT_TRAINING = ("archs", "arch_seed", "score", "eval_routing", "eval_seed", "bn_mode", "recal_batches",
                "eval_batch_size", "eval_max_batches", "eval_every", "eval_every_archs", "truth", "out_dir",
                "save_every", "tensorboard")
TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool, "list": list, "dict": dict}


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader reading floats as YAML 1.2 does (1.0e8 and 1e-3 are floats; YAML 1.1 wants 1.0e+8) and dates as
    strings, as ``papermill -f`` does: a params file means the same to closekit train and closekit batch (papermill -f
    itself reads 1e-3 as text)."""


Yaml12Loader.yaml_implicit_resolvers = {c: [r for r in rs if r[0] != "tag:yaml.org,2002:timestamp"]
                                        for c, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(
    r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"), list("-+.0123456789"))


class UniqueKeys:
    """A PyYAML loader mixin refusing a mapping key given twice (PyYAML keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path, kind="params file"):
    """The mapping a YAML file holds; one-line FileNotFoundError / ValueError (bad YAML, a key twice, no mapping)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} {path} not found; pass an existing YAML file")
    try:
        d = yaml.load(path.read_text(), Loader=type("Loader", (UniqueKeys, Yaml12Loader), {}))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{kind} {path} is not valid YAML{where}: {getattr(e, 'problem', None) or e}; "
                         "fix the file") from None
    if d is not None and not isinstance(d, dict):
        raise ValueError(f"{kind} {path} must hold a mapping of keys, got {type(d).__name__}")
    return d or {}


def fits(v, t):
    """Does value ``v`` fit the type name ``t`` (a TYPES key, tuple: a tuple of ints, None)?"""
    if t == "None":
        return v is None
    if t == "tuple":
        return isinstance(v, (list, tuple)) and all(fits(x, "int") for x in v)
    return isinstance(v, TYPES[t]) and not (isinstance(v, bool) and t != "bool")     # bool is an int subclass


def described(t):
    """Type name ``t`` as an error line says it: an int, a list of ints, null."""
    return "null" if t == "None" else "a list of ints" if t == "tuple" else f"a{'n' * (t[0] in 'aeiou')} {t}"


def _key(default, doc, group=None):
    """A config field with its one-line doc (and the name of the group it opens), read by ``reference``."""
    return dataclasses.field(default=default, metadata={"doc": doc, "group": group})


def reference(cls=None):
    """(group, key, type, default, doc) of every key of ``cls`` (default RunConfig) in order: ``train --help``, docs."""
    rows, group = [], None
    for f in fields(cls or RunConfig):
        group = f.metadata.get("group") or group
        rows.append((group, f.name, str(f.type), f.default, f.metadata.get("doc", "")))
    return rows


class YamlConfig:
    """YAML in / YAML out for frozen config dataclasses; unknown keys, wrong types, broken YAML and missing
    files fail in one line naming the key or file, the value and what is expected."""
    kind, file_kind = "config", "params"      # words used in error messages

    def _check_types(self):
        """Every field against its annotation (ints accepted as floats and stored as floats; lists as tuples)."""
        for f in fields(self):
            v, types = getattr(self, f.name), [t.strip() for t in str(f.type).split("|")]
            if not any(fits(v, t) for t in types):
                raise ValueError(f"{self.kind} {f.name}={v!r} must be {' or '.join(described(t) for t in types)}")
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
        source = [f"{cls.file_kind} file {path}"] if path else []
        source += [f"overrides {', '.join(overrides)}"] if overrides else []
        return cls.from_dict({**d, **overrides}, source=" with ".join(source) or None)

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
    space: str = _key("nb201", "search space: nb201 | nb301 | nds-resnet | nds-resnexta", group="what")
    dataset: str = _key("embedded", "closekit.data registry: embedded | fashion-mnist | cifar10 | synthetic")
    data_dir: str | None = _key(None, "dataset files (None: the dataset's default place)")
    download: bool = _key(False, "torchvision download for cifar10")
    image_size: int | None = _key(12, "image side in pixels (None: native resolution)")
    channels: int | None = _key(None, "None: native channels; 3 repeats a grey channel")
    train_portion: float = _key(0.8, "first part of the training set trains, the rest scores")
    train_limit: int | None = _key(None, "keep only the first n training images (None: all)")
    augment: bool = _key(True, "random crop + flip on training batches")

    def data_kwargs(self):
        """The keyword arguments of ``closekit.data.load(self.dataset, ...)``."""
        return dict(root=self.data_dir, image_size=self.image_size, channels=self.channels, download=self.download,
                    train_portion=self.train_portion, train_limit=self.train_limit, augment=self.augment)


@dataclass(frozen=True)
class RunConfig(DataKeys, YamlConfig):
    """One run: space, data (DataKeys), supernet, sharing curriculum, optimisation, scoring, ground truth."""
    supernet: str = _key("close", "vanilla: an own block per slot | close: a bank of GLOW blocks and a router",
                         group="supernet")
    channels_init: int = _key(8, "C: cell channels of the first stage (then 2C, 4C); paper 16")
    cells_per_stage: int = _key(2, "N cells per stage; paper 5")
    dropout: float = _key(0.1, "dropout before the classifier")
    num_blocks: int = _key(5, "GLOW blocks per cell", group="sharing (a vanilla run ignores it)")
    cl_schedule: tuple = _key((1, 7, 13, 19, 25), "epoch at which block k becomes active; paper 1/201/401/601/801")
    router: str = _key("auto", "closekit.sharing.ROUTERS: auto (vanilla: own; close: gate, NDS: table) | gate | "
                       "random | oneblock | fewshot | table")
    gate_level: str = _key("node", "GATE: node-level (an MLP per edge over its nodes' embeddings) | arch-level")
    fewshot_edge: int = _key(0, "few-shot router: the slot (row of the space's slot table) whose op splits")
    gumbel_temperature: float = _key(5.0, "temperature of the GATE's Gumbel-softmax")
    gates_op_dim: int = _key(48, "GATES encoder: op embedding size")
    gates_node_dim: int = _key(48, "GATES encoder: node embedding size")
    gates_hidden: int = _key(96, "GATES encoder: hidden size")
    gates_gcn_dims: tuple = _key((128, 128, 128, 128, 128), "GATES encoder: GCN layer sizes")
    mlp_hidden: tuple = _key((200, 200, 200), "GATE MLP hidden layer sizes")
    mlp_dropout: float = _key(0.1, "GATE MLP dropout")
    mlp_growth: str = _key("inherit", "inherit: new row += parent row; only_last / full: re-init")
    mlp_parent: str = _key("prev", "the inherited MLP row: the previous block's (reference) or the WIT parent's")
    wit_from: str = _key("prev", "WIT parent: previous block or a random earlier one")
    cl_criteria: str = _key("pre", "NDS split table: split the shallowest long group (pre, reference) | longest (max)")
    wit_buffers: bool = _key(True, "NDS WIT sums the whole state dict, BN running stats too (reference) | params only")
    head_norm: str = _key("none", "NDS: pooled features to the FC as they are (reference) | mean: mean-only batch norm")
    sampler: str = _key("uniform", "NDS: one random configuration a step (reference) | sandwich: + the "
                        "largest and the smallest, gradients summed (slimmable nets' rule; ~6x the work)")
    gate_forward: str | None = _key(None, "all (reference) | others_no_grad (None: this; same updates) | selected")
    aw_nas_compat: bool = _key(False, "reproduce orphaned GATE params and level-1 GATE weight decay")
    keep_zero_grads: bool = _key(False, "torch-1.x zero_grad (reference): decay and momentum move every used param")
    gate_lr_scale: float = _key(1.0, "GATE learning rate = lr x this (reference: 1, one optimizer for all)")
    gate_weight_decay: float | None = _key(None, "GATE weight decay (None: weight_decay, as the reference)")
    gate_embed_norm: str = _key("none", "GATE node embeddings before the MLP: as they are (reference) | layernorm | l2")
    gate_gcn_init: str = _key("uniform", "GATE GCN weights: U(+-1/sqrt(out)) (reference) | norm_preserving")
    gate_edge_op: bool = _key(False, "node-level GATE MLP also sees the edge's op, one-hot (needs gate_level: node)")
    epochs: int = _key(30, "training epochs; paper 1000", group="optimisation")
    batch_size: int = _key(256, "training batch size")
    lr: float = _key(0.05, "SGD learning rate")
    momentum: float = _key(0.9, "SGD momentum")
    weight_decay: float = _key(5e-4, "SGD weight decay")
    grad_clip: float | None = _key(5.0, "gradient norm clip (None: no clipping)")
    plateau_factor: float = _key(0.5, "ReduceLROnPlateau factor on the epoch's training loss")
    plateau_patience: int = _key(3, "ReduceLROnPlateau patience in epochs; paper 30")
    srt_epochs: tuple = _key((13,), "learning-rate restarts (new optimizer and scheduler); paper 401")
    seed: int = _key(20, "seed of weights, batches, sampled archs and WIT")
    device: str = _key("auto", "auto | cpu | cuda | cuda:N")
    deterministic: bool = _key(False, "deterministic GPU kernels: bitwise-exact resume on cuda, slower")
    save_every: int = _key(5, "checkpoint period in epochs (the last epoch is always saved)")
    archs: str = _key("truth", "all | valid | sample:N | truth | a text file of arch strings", group="scoring")
    arch_seed: int = _key(0, "seed of sample:N and of the probe's sample")
    score: str = _key("acc", "what ranks the architectures: acc = held-out accuracy with the shared weights "
                      "(reference) | loss = the negated held-out cross-entropy (lower loss ranks higher)")
    eval_routing: str = _key("argmax", "argmax (deterministic) | gumbel (reference: sampled, seeded)")
    eval_seed: int = _key(123, "seed of gumbel scoring")
    bn_mode: str = _key("batch", "batch statistics (reference) | recalibrate running stats")
    recal_batches: int = _key(10, "training batches per arch for recalibrate")
    eval_batch_size: int = _key(256, "scoring batch size")
    eval_max_batches: int | None = _key(None, "held-out batches per arch (None: all)")
    eval_every: int = _key(0, "score a small arch sample every n epochs (0: never)")
    eval_every_archs: int = _key(50, "size of that sample")
    truth: str | None = _key("mini-nb201", "closekit.groundtruth.load: shipped name, CSV, minibench dir, official "
                             "file (None: no ranking)", group="ground truth and output")
    out_dir: str = _key("runs/nb201-mini-close", "run directory (closekit train --out overrides it)")
    tensorboard: bool | str = _key(False, "TensorBoard: true (<out_dir>/tensorboard) | DIR (DIR/<run name>) | false")

    def __post_init__(self):
        self._check_types()
        for name, options in CHOICES.items():         # None passed the type check: an optional key left unset
            if getattr(self, name) not in (*options, None):
                raise ValueError(f"config {name}={getattr(self, name)!r} is not one of {', '.join(options)}")
        if self.gate_edge_op and self.gate_level == "arch":
            raise ValueError("config gate_edge_op=true needs gate_level: node (the arch-level GATE maps one embedding "
                             "to every edge, it has no per-edge input); set gate_level: node or gate_edge_op: false")
        sched = self.cl_schedule
        if self.supernet == "close" and len(sched) != self.num_blocks:
            raise ValueError(f"config cl_schedule has {len(sched)} epochs but num_blocks={self.num_blocks}; "
                             "give one start epoch per GLOW block")
        if self.supernet == "close" and (list(sched) != sorted(sched) or sched[0] != 1):
            raise ValueError(f"config cl_schedule={list(sched)} must be sorted and start at epoch 1")
        if not 0 < self.train_portion < 1:
            raise ValueError(f"config train_portion={self.train_portion} must be in (0, 1): the rest of the training "
                             "set is the held-out split that scores architectures")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"config {f.name}={v} must be a finite number")
            low, equal = AT_LEAST.get(f.name, (None, True))
            if v is not None and low is not None and (v < low or (v == low and not equal)):
                raise ValueError(f"config {f.name}={v} must be {'>=' if equal else '>'} {low}")

    def gate_variant(self):
        """The GATE variant keys set away from the reference ({} for the paper's GATE)."""
        return {k: getattr(self, k) for k in GATE_VARIANT if getattr(self, k) != getattr(type(self), k)}

    def training(self):
        """The keys that shape the trained weights (a checkpoint resumes only under the same ones)."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_TRAINING}


def resolve_device(name):
    """'auto' -> cuda when available else cpu."""
    import torch
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def parse_overrides(pairs: list[str], flag: str = "--set") -> dict:
    """``["lr=1.0e-3", "archs=sample:20"]`` -> {"lr": 0.001, "archs": "sample:20"}: KEY=VALUE, values read as YAML."""
    out = {}
    for pair in pairs or []:
        key, eq, text = pair.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got {pair!r} (e.g. {flag} lr=0.1)")
        try:
            out[key.strip()] = yaml.load(text, Loader=Yaml12Loader)
        except yaml.YAMLError as e:
            raise ValueError(f"{flag} {pair}: the value is not valid YAML ({getattr(e, 'problem', None) or e}); "
                             f"quote it, e.g. {flag} '{key}=\"...\"'") from None
    return out
