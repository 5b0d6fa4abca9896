"""The NDS ResNet and ResNeXt-A design spaces (Radosavovic et al., ICCV 2019) as CLOSE §4.3 uses them.

An architecture is a flat tuple in aw_nas genotype key order (depths.0..2, widths.0..2[, bot_muls.0..2,
num_groups.0..2]); formats: the canonical ``d1_16_1-w16_64_128[-b..-g..]``, the aw_nas genotype (an OrderedDict's
str) and the NDS record's ``net`` dict (4-entry lists, index 0 the stem).
"""
import ast
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from .common import randint, read_dict

STEM_W, STRIDES = 16, (1, 2, 2)
STEM = {"ds": 1, "ws": STEM_W, "bot_muls": 0.0, "num_gs": 1}       # the stem's entry (index 0) of a net dict
FEWER_WEIGHTS_UP = {"num_groups"}      # decisions whose larger choice has fewer weights (grouped convolutions)


@dataclass(frozen=True)
class Design:
    """One NDS design space: its per-stage decisions (aw_nas key prefix, short letter, NDS net key, choices)."""
    name: str              # e.g. ResNet
    block: str             # NDS block_type
    decisions: tuple       # ((prefix, letter, net_key, choices), ...)

    @property
    def keys(self):
        """The aw_nas genotype keys in order (depths.0, depths.1, ...)."""
        return [f"{p}.{s}" for p, _, _, _ in self.decisions for s in range(3)]

    @property
    def choices(self):
        """The choice tuple of each entry of an arch tuple."""
        return [c for _, _, _, c in self.decisions for _ in range(3)]

    @property
    def count(self):
        return math.prod(len(c) for c in self.choices)

    @property
    def max_depth(self):
        return max(self.decisions[0][3])

    def _bad(self, msg):
        return ValueError(f"bad NDS {self.name} architecture: {msg}")

    def check(self, arch):
        """Validate a flat tuple; one-line ValueError naming the bad decision and its choices."""
        arch = tuple(arch)
        if len(arch) != len(self.keys):
            raise self._bad(f"expected {len(self.keys)} values ({', '.join(self.keys)}), got {len(arch)}")
        for key, v, ch in zip(self.keys, arch, self.choices):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v not in ch:
                raise self._bad(f"{key}={v!r} is not one of {', '.join(map(str, ch))}")
        return tuple(ch[ch.index(v)] for v, ch in zip(arch, self.choices))   # the choice's type (0.5, not 0.50000)

    def to_str(self, arch):
        """Canonical string, e.g. d12_12_16-w24_32_40."""
        arch = self.coerce(arch)
        return "-".join(d[1] + "_".join(f"{v:g}" for v in arch[3 * i:3 * i + 3]) for i, d in enumerate(self.decisions))

    def _from_canonical(self, s):
        parts, letters = s.split("-"), [d[1] for d in self.decisions]
        if len(parts) != len(letters):
            raise self._bad(f"{s!r} has {len(parts)} '-'-separated groups, expected {len(letters)} "
                            f"({'-'.join(l + 'a_b_c' for l in letters)})")
        vals = []
        for part, letter in zip(parts, letters):
            nums = part[1:].split("_")
            if part[:1] != letter or len(nums) != 3:
                raise self._bad(f"group {part!r} of {s!r} must be {letter}<v0>_<v1>_<v2>")
            try:
                vals += [float(n) if letter == "b" else int(n) for n in nums]
            except ValueError:
                raise self._bad(f"group {part!r} of {s!r} holds a non-number") from None
        return self.check(vals)

    def to_genotype(self, arch):
        """The aw_nas genotype string: str() of an OrderedDict of the keys."""
        return str(OrderedDict(zip(self.keys, self.check(arch))))

    def from_mapping(self, d, what="genotype"):
        """An arch from a {key: value} mapping with exactly the aw_nas keys."""
        missing, extra = [k for k in self.keys if k not in d], [str(k) for k in d if k not in self.keys]
        problems = [f"lacks {', '.join(missing)}"] if missing else []
        problems += [f"has unknown key(s) {', '.join(extra)}"] if extra else []
        if problems:
            raise self._bad(f"{what} {'; '.join(problems)}")
        return self.check([d[k] for k in self.keys])

    def to_net(self, arch):
        """The NDS record's net dict: block_type and 4-entry lists whose index 0 is the stem."""
        arch = self.check(arch)
        return {"block_type": self.block, "ss": [1, *STRIDES],
                **{key: [STEM[key], *arch[3 * i:3 * i + 3]] for i, (_, _, key, _) in enumerate(self.decisions)}}

    def from_net(self, net):
        """An arch from an NDS ``net`` dict (its block type, strides and stem entry checked)."""
        if net.get("block_type", self.block) != self.block:
            raise self._bad(f"net block_type {net['block_type']!r} is not {self.block!r}")
        if list(net.get("ss", [1, *STRIDES])) != [1, *STRIDES]:
            raise self._bad(f"net ss={net['ss']} is not [1, 1, 2, 2]")
        vals = []
        for _, _, key, _ in self.decisions:
            v = net.get(key)
            if not isinstance(v, (list, tuple)) or len(v) != 4:
                raise self._bad(f"net {key}={v!r} must be a 4-entry list (index 0: the stem)")
            if key in ("ds", "ws") and v[0] != STEM[key]:
                raise self._bad(f"net {key}[0]={v[0]!r} is not the CIFAR stem's {STEM[key]}")
            vals += list(v[1:])
        return self.check(vals)

    def parse(self, text):
        """Canonical string, aw_nas genotype string, JSON of a net dict or of a {key: value} dict -> arch."""
        if not isinstance(text, str):
            raise self._bad(f"expected a str, got {type(text).__name__}")
        s = text.strip()
        if s.startswith("OrderedDict"):
            try:                                            # its argument: a literal list of (key, value) pairs
                d = dict(ast.literal_eval(s.removeprefix("OrderedDict")))
            except (ValueError, SyntaxError, TypeError):
                raise self._bad(f"genotype {s[:60]!r} is not OrderedDict([(key, value), ...])") from None
            return self.from_mapping(d)
        if s.startswith("{"):
            return self.coerce(read_dict(s, f"bad NDS {self.name} architecture: "))
        return self._from_canonical(s)

    def coerce(self, x):
        """An arch from a string, a net / genotype dict or a flat tuple (validated)."""
        if isinstance(x, str):
            return self.parse(x)
        if isinstance(x, dict):
            return self.from_net(x) if "ds" in x else self.from_mapping(x)
        try:
            return self.check(tuple(x))
        except TypeError:
            raise self._bad(f"cannot read a {type(x).__name__}") from None

    def sample(self, generator=None):
        """Each decision drawn uniformly from its choices (the reference's GermSearchSpace.random_sample)."""
        return tuple(ch[randint(len(ch), generator)] for ch in self.choices)

    def extremes(self):
        """(largest, smallest) configuration: each decision at the end with the most weights, then the fewest."""
        big = tuple(min(c) if p in FEWER_WEIGHTS_UP else max(c) for p, _, _, c in self.decisions for _ in range(3))
        small = tuple(max(c) if p in FEWER_WEIGHTS_UP else min(c) for p, _, _, c in self.decisions for _ in range(3))
        return big, small

    def mutate(self, arch, generator=None):
        """One decision set to another of its choices, uniformly."""
        arch = list(self.coerce(arch))
        i = randint(len(arch), generator)
        ch, j = self.choices[i], randint(len(self.choices[i]) - 1, generator)
        arch[i] = ch[j + (j >= ch.index(arch[i]))]
        return tuple(arch)

    def stage(self, arch, s):
        """(depth, width, bot_mul, groups) of stage s (ResNet: bot_mul 1, groups 1 for the record)."""
        arch, n = self.check(arch), len(self.decisions)
        return arch[s], arch[3 + s], (arch[6 + s] if n > 2 else 1.0), (arch[9 + s] if n > 3 else 1)


class Configs(Sequence):
    """Every configuration of a design, lazily (mixed-radix decoding of an index; nothing is materialised)."""

    def __init__(self, design):
        self.design = design

    def __len__(self):
        return self.design.count

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i, out = i % len(self), []
        for ch in reversed(self.design.choices):
            i, k = divmod(i, len(ch))
            out.append(ch[k])
        return tuple(reversed(out))


RESNET = Design("ResNet", "res_basic_block", (
    ("depths", "d", "ds", (1, 2, 3, 4, 6, 8, 12, 16, 24)),
    ("widths", "w", "ws", (16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256))))
RESNEXTA = Design("ResNeXt-A", "res_bottleneck_block", (
    ("depths", "d", "ds", (1, 2, 4, 8, 16)),
    ("widths", "w", "ws", (16, 32, 64, 128, 256)),
    ("bot_muls", "b", "bot_muls", (0.25, 0.5, 1.0)),
    ("num_groups", "g", "num_gs", (1, 2, 4))))
