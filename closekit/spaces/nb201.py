"""NAS-Bench-201 supernets (CLOSE §4.1) and stand-alone nets: one macro network (stem; three stages of N cells at
C / 2C / 4C joined by residual reductions; BN-ReLU, pooling, dropout, linear) whose cells hold a Bank of op-sets,
a router picking each edge's block (vanilla: edge i -> block i; CLOSE: the GATE). Cell BN is non-affine."""
import pandas as pd
import torch
from torch import nn

from .. import sharing
from ..gates import Gate
from . import base
from .common import CellSpace, ReLUConvBN, randint
from .nb201_arch import CONVS, EDGES, OPS, NB201Archs, coerce, is_valid, iso_key, live_edges, parse, to_matrix, to_str

SHORT = dict(zip(OPS, ("none", "skip", "conv1x1", "conv3x3", "pool3x3")))     # op names in slot tables, drawings


def make_op(name, C, affine=False):
    """One NB201 primitive on C channels (`none` is never built: its edges are not run)."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    return ReLUConvBN(C, C, 1 if name == "nor_conv_1x1" else 3, affine=affine)


class ResBlock(nn.Module):
    """NB201 reduction block: two ReLU-Conv3x3-BN (first stride 2) + avgpool-conv1x1 shortcut."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, affine=True)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, affine=True)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def run_dag(x, live, edge):
    """Node j = sum of edge(e, node_i) over the live edges e = i->j; returns node 3 (zeros when it is dead)."""
    nodes = [x]
    for j in range(1, 4):
        ins = [edge(e, nodes[fr]) for e, (to, fr) in enumerate(EDGES) if to == j and live[e]]
        nodes.append(sum(ins[1:], ins[0]) if ins else None)
    return nodes[3] if nodes[3] is not None else torch.zeros_like(x)


class Cell(nn.Module):
    """Supernet cell: every live edge's op is drawn from the bank block its router picked."""

    def __init__(self, C, num_blocks, placeholders=False):
        super().__init__()
        self.bank = sharing.Bank(lambda: nn.ModuleDict({op: make_op(op, C) for op in OPS[1:]}), num_blocks,
                                 placeholders)

    def forward(self, x, arch, live, gates, sel, mode, touched):
        return run_dag(x, live, lambda e, h: sharing.routed(self.bank, OPS[arch[e]], h, gates[e], sel[e], mode,
                                                            touched))


class FixedCell(nn.Module):
    """Stand-alone cell: one op per live edge, affine BN (NB201 stand-alone training)."""

    def __init__(self, C, arch):
        super().__init__()
        self.live = live_edges(arch)
        self.ops = nn.ModuleDict({str(e): make_op(OPS[a], C, affine=True) for e, a in enumerate(arch) if self.live[e]})

    def forward(self, x):
        return run_dag(x, self.live, lambda e, h: self.ops[str(e)](h))


class MacroNet(nn.Module):
    """Stem, three stages of N cells at C, 2C, 4C joined by ResBlocks, head; with FixedCells a stand-alone net."""

    def __init__(self, C, N, in_channels, num_classes, dropout, make_cell):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers, c = [], C
        for stage in range(3):
            if stage:
                layers.append(ResBlock(c, 2 * c))
                c *= 2
            layers += [make_cell(c) for _ in range(N)]
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, num_classes))

    def forward(self, x, *cell_args):
        """Logits; cells get ``cell_args`` after their input."""
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x) if isinstance(layer, ResBlock) else layer(x, *cell_args)
        return self.classifier(self.head(x).mean((2, 3)))       # global average pooling


class Supernet(MacroNet, base.Supernet):
    """NB201 supernet: vanilla (6 own blocks per cell) or banked (K GLOW blocks routed by the GATE, ...)."""
    close_router = "gate"
    num_ops, num_slots, coerce = len(OPS), len(EDGES), staticmethod(coerce)

    def __init__(self, cfg, in_channels, num_classes):
        plan = self.plan(cfg, own=len(EDGES))
        super().__init__(cfg.channels_init, cfg.cells_per_stage, in_channels, num_classes, cfg.dropout,
                         lambda c: Cell(c, *plan[1:]))
        self.gate_forward = cfg.gate_forward or "others_no_grad"
        self._share(cfg, plan, [m.bank for m in self.cells], in_channels, num_classes)

    @property
    def cells(self):
        return [m for m in self.layers if isinstance(m, Cell)]

    def own_blocks(self, arch):
        return {"cell": range(len(EDGES))}

    def slot_ops(self, arch):
        return {"cell": list(arch)}

    def gate_input(self, arch):
        """The GATE's input for one (coerced) architecture: the op matrix [4, 4] long (adj[j, i] = op on i->j)."""
        return torch.tensor(to_matrix(arch), device=self.level.device)

    def make_gate(self, K, **kw):
        return Gate(EDGES, len(OPS), 4, K, **kw)

    def forward(self, x, arch, routing=None):
        arch = coerce(arch)
        gates = (routing or self.route(arch))["cell"]
        mode = self.gate_forward if (self.training and gates.requires_grad) else "fixed"
        sel = gates.detach().argmax(1).tolist()                    # one device sync per step
        return super().forward(x, arch, live_edges(arch), gates, sel, mode, self.touched)


NOTABLE = {"ResNet-like": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
           "all conv3x3": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                          "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"}


class NB201(NB201Archs, CellSpace):
    """The NB201 space: architectures (NB201Archs) plus its slots, drawing and supernets."""
    name, supernet_cls, SHORT, NOTABLE = "nb201", Supernet, SHORT, NOTABLE
    enumerations = ("all", "valid")
    modules = ("spaces.nb201", "spaces.nb201_arch", "spaces.common")
    parse, to_str, coerce = staticmethod(parse), staticmethod(to_str), staticmethod(coerce)

    def enumerate(self, kind):
        """'all': the 6,466 isomorphism-class representatives; 'valid': the 6,321 with a live conv."""
        if kind not in self.enumerations:
            return super().enumerate(kind)
        return list(self.representatives if kind == "all" else self.valid)

    def mutate(self, arch, generator):
        """A valid representative of another class: one random edge gets another op (resampled until valid)."""
        arch, key = coerce(arch), iso_key(arch)
        for _ in range(1000):
            e, op = randint(len(EDGES), generator), randint(len(OPS) - 1, generator)
            new = arch[:e] + (op + (op >= arch[e]),) + arch[e + 1:]
            if is_valid(new) and iso_key(new) != key:
                return self.canonical(new)
        raise ValueError(f"no valid mutation of {to_str(arch)} found")

    def slots(self, arch):
        """One row per edge: cell, slot, label (i→j), op (short name), live, param (live conv)."""
        arch = coerce(arch)
        live = live_edges(arch)
        return pd.DataFrame({"cell": "cell", "slot": range(len(EDGES)), "label": [f"{i}→{j}" for j, i in EDGES],
                             "op": [SHORT[OPS[o]] for o in arch], "live": live,
                             "param": [lv and o in CONVS for lv, o in zip(live, arch)]})

    def edit(self, arch, i, op):
        """``arch`` with edge i set to ``op`` (a short name)."""
        arch = coerce(arch)
        return arch[:i] + (OPS.index(self.long_op(op)),) + arch[i + 1:]

    def draw(self, arch, table, ax=None, title=None):
        """The cell DAG with each edge coloured by its block (see nb201_draw)."""
        from .nb201_draw import draw_cell
        return draw_cell(table, title, ax)

    def standalone(self, arch, recipe, in_channels, num_classes):
        """Stand-alone network of one architecture (recipe.C channels, recipe.N cells per stage)."""
        arch = coerce(arch)
        return MacroNet(recipe.C, recipe.N, in_channels, num_classes, 0.0, lambda c: FixedCell(c, arch))


SPACE = NB201()
