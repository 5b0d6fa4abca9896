"""NAS-Bench-301 supernets (CLOSE §4.2, §3) and the stand-alone DARTS network of one genotype.

DARTS macro (aw_nas SharedNet): 3C stem, 3N+2 cells with reductions at N and 2N+1, pooling, dropout, linear. Vanilla
cells hold one op-set per edge (from, to); CLOSENet cells K GLOW blocks, reduction cells K stride-2 ones more for the
edges out of their inputs (same gate index), routed by the two-cell GATE. Supernet cell BN is non-affine.
"""
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .. import sharing
from ..gates import CellGate
from . import base
from .common import CellSpace, ReLUConvBN
from .nb301_arch import CELLS, CONVS, NODES, OFFSET, OPS, canonical, coerce, mutate, node_of, parse, sample, to_str

SHORT = {"sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3", "dil_conv_5x5": "dil5",
         "max_pool_3x3": "max", "avg_pool_3x3": "avg", "skip_connect": "skip"}
STEM_MULTIPLIER = 3                                             # stem channels = 3C (DARTS)
EDGES = tuple((to, fr) for to in NODES for fr in range(to))     # the 14 possible edges, ConfigSpace edge-id order


def conv(c_in, c_out, k, stride=1, pad=0, dil=1, groups=1):
    return nn.Conv2d(c_in, c_out, k, stride, pad, dilation=dil, groups=groups, bias=False)


def sep_conv(C, k, stride, affine):
    """DARTS sep_conv: (ReLU, depthwise kxk, pointwise, BN) twice; the first depthwise has the stride."""
    def half(s):
        return [nn.ReLU(), conv(C, C, k, s, k // 2, groups=C), conv(C, C, 1), nn.BatchNorm2d(C, affine=affine)]

    return nn.Sequential(*half(stride), *half(1))


def dil_conv(C, k, stride, affine):
    """DARTS dil_conv: ReLU, depthwise kxk dilation 2, pointwise, BN."""
    return nn.Sequential(nn.ReLU(), conv(C, C, k, stride, k - 1, dil=2, groups=C), conv(C, C, 1),
                         nn.BatchNorm2d(C, affine=affine))


class FactorizedReduce(nn.Module):
    """ReLU, two stride-2 1x1 convs (the second shifted by one pixel) to c_out/2 each, concat, BN."""

    def __init__(self, c_in, c_out, affine=False):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_a, self.conv_b = conv(c_in, c_out // 2, 1, 2), conv(c_in, c_out - c_out // 2, 1, 2)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1)))], 1))


def make_op(name, C, stride, alone=False):
    """One DARTS primitive on C channels (supernet: non-affine BN, pools with a BN; alone: affine BN, bare pools)."""
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(C, C, affine=alone)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        pool = nn.MaxPool2d(3, stride, 1) if name == "max_pool_3x3" else nn.AvgPool2d(3, stride, 1,
                                                                                       count_include_pad=False)
        return pool if alone else nn.Sequential(pool, nn.BatchNorm2d(C, affine=False))
    return (sep_conv if name.startswith("sep") else dil_conv)(C, int(name[-1]), stride, affine=alone)


def opset(C, stride):
    """One full set of the 7 candidate ops (a GLOW block, or a vanilla edge's op-set)."""
    return nn.ModuleDict({name: make_op(name, C, stride) for name in OPS})


def run_nodes(nodes, cell, edge):
    """Nodes 2..5 after the two inputs, node k the sum of ``edge(i, input)`` over its connections; their concat."""
    for k in NODES:
        nodes.append(sum(edge(i, nodes[cell[i][1]]) for i in (2 * k - 4, 2 * k - 3)))
    return torch.cat(nodes[2:], 1)


class Cell(nn.Module):
    """Supernet cell: each chosen connection runs its op from the bank block its router picked."""

    def __init__(self, c_pp, c_p, C, reduction, reduction_prev, num_blocks, placeholders, own):
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, C) if reduction_prev else ReLUConvBN(c_pp, C, 1)
        self.pre1 = ReLUConvBN(c_p, C, 1)
        self.reduction, self.kind, self.bank2 = reduction, "reduce" if reduction else "normal", None
        if own:                                                                # one op-set per edge (to, from)
            strides = iter(2 if reduction and fr < 2 else 1 for _, fr in EDGES)
            self.bank = sharing.Bank(lambda: opset(C, next(strides)), len(EDGES))
        else:
            self.bank = sharing.Bank(lambda: opset(C, 1), num_blocks, placeholders)
            if reduction:                                                      # edges out of the input nodes
                self.bank2 = sharing.Bank(lambda: opset(C, 2), num_blocks, placeholders)

    def banks(self):
        return [b for b in (self.bank, self.bank2) if b is not None]

    def forward(self, s0, s1, arch, routing, sel, mode, touched):
        cell, gates, sel = arch[CELLS.index(self.kind)], routing[self.kind], sel[self.kind]

        def edge(i, h):
            bank = self.bank2 if self.bank2 is not None and cell[i][1] < 2 else self.bank
            return sharing.routed(bank, cell[i][0], h, gates[i], sel[i], mode, touched)
        return run_nodes([self.pre0(s0), self.pre1(s1)], cell, edge)


class FixedCell(nn.Module):
    """Stand-alone DARTS cell of one genotype cell: affine BN, bare pools, optional drop-path."""

    def __init__(self, c_pp, c_p, C, reduction, reduction_prev, cell, drop_prob=0.0):
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, C, True) if reduction_prev else ReLUConvBN(c_pp, C, 1, affine=True)
        self.pre1 = ReLUConvBN(c_p, C, 1, affine=True)
        self.cell, self.drop_prob = cell, drop_prob
        self.ops = nn.ModuleList(make_op(op, C, 2 if reduction and src < 2 else 1, alone=True)
                                 for op, src in cell)

    def forward(self, s0, s1):
        def edge(i, h):
            h = self.ops[i](h)
            if isinstance(self.ops[i], nn.Identity) or not self.training or self.drop_prob <= 0:
                return h
            keep = torch.empty(h.shape[0], 1, 1, 1, device=h.device).bernoulli_(1 - self.drop_prob)   # DARTS
            return h * keep / (1 - self.drop_prob)                            # drop-path: the whole op per sample
        return run_nodes([self.pre0(s0), self.pre1(s1)], self.cell, edge)


class MacroNet(nn.Module):
    """DARTS network: stem, 3N+2 cells (reductions at N and 2N+1), global pooling, dropout, linear."""

    def __init__(self, C, N, in_channels, num_classes, dropout, make_cell):
        super().__init__()
        c = STEM_MULTIPLIER * C
        self.stem = nn.Sequential(conv(in_channels, c, 3, 1, 1), nn.BatchNorm2d(c))
        c_pp, c_p, c_cur, red_prev, layers = c, c, C, False, []
        for i in range(3 * N + 2):
            red = i in (N, 2 * N + 1)
            c_cur *= 2 if red else 1
            layers.append(make_cell(c_pp, c_p, c_cur, red, red_prev))
            c_pp, c_p, red_prev = c_p, 4 * c_cur, red
        self.layers = nn.ModuleList(layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_p, num_classes))

    def run(self, x, *cell_args):
        """Logits; cells get ``cell_args`` after their two inputs."""
        s0 = s1 = self.stem(x)
        for layer in self.layers:
            s0, s1 = s1, layer(s0, s1, *cell_args)
        return self.classifier(s1.mean((2, 3)))


class Standalone(MacroNet):
    """One NB301 genotype trained on its own (affine BN, drop-path; channels_last: faster depthwise convs on CPU)."""

    def __init__(self, arch, C, N, in_channels, num_classes, drop_path=0.0, channels_last=False):
        arch = coerce(arch)
        super().__init__(C, N, in_channels, num_classes, 0.0,
                         lambda *a: FixedCell(*a, arch[1] if a[3] else arch[0], drop_path))
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x):
        return self.run(x.contiguous(memory_format=torch.channels_last) if self.channels_last else x)


class Supernet(MacroNet, base.Supernet):
    """NB301 supernet: vanilla (14 own blocks per cell) or banked (K GLOW blocks, x2 in reduction cells)."""
    cell_types, close_router = CELLS, "gate"
    num_ops, num_slots, coerce = len(OPS), len(CELLS) * 2 * len(NODES), staticmethod(coerce)

    def __init__(self, cfg, in_channels, num_classes):
        plan = self.plan(cfg, own=len(EDGES))
        super().__init__(cfg.channels_init, cfg.cells_per_stage, in_channels, num_classes, cfg.dropout,
                         lambda *a: Cell(*a, *plan[1:], own=plan[0] == "own"))
        self.gate_forward = cfg.gate_forward or "others_no_grad"
        self._share(cfg, plan, [b for cell in self.cells for b in cell.banks()], in_channels, num_classes)

    @property
    def cells(self):
        return list(self.layers)

    def own_blocks(self, arch):
        """The vanilla block of each chosen connection: its (from, to) edge's ConfigSpace id."""
        return {c: [OFFSET[node_of(i)] + src for i, (_, src) in enumerate(cell)] for c, cell in zip(CELLS, arch)}

    def slot_ops(self, arch):
        return {c: [OPS.index(o) for o, _ in cell] for c, cell in zip(CELLS, arch)}

    def gate_input(self, arch):
        """The GATE's input: [2, 2, 8] long, source node and op id of each connection, per cell type."""
        return torch.tensor([[[s for _, s in c], [OPS.index(o) for o, _ in c]] for c in arch],
                            device=self.level.device)

    def make_gate(self, K, **kw):
        return CellGate(len(OPS), K, **kw)

    def forward(self, x, arch, routing=None):
        arch = coerce(arch)
        routing = routing or self.route(arch)
        mode = self.gate_forward if self.training and any(routing[c].requires_grad for c in CELLS) else "fixed"
        sel = torch.cat([routing[c].detach().argmax(1) for c in CELLS]).tolist()   # one device sync per step
        return self.run(x, arch, routing, {"normal": sel[:8], "reduce": sel[8:]}, mode, self.touched)


DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
_SEP3 = ", ".join(["('sep_conv_3x3', 0)", "('sep_conv_3x3', 1)"] * 4)
NOTABLE = {"DARTS-V2": DARTS_V2,
           "all sep_conv_3x3 from the inputs": f"Genotype(normal=[{_SEP3}], normal_concat=[2, 3, 4, 5], "
                                               f"reduce=[{_SEP3}], reduce_concat=[2, 3, 4, 5])"}


class NB301(CellSpace):
    """The NB301 (DARTS) space: genotypes (nb301_arch), slots, drawing, supernets."""
    name, supernet_cls, SHORT, NOTABLE = "nb301", Supernet, SHORT, NOTABLE
    modules = ("spaces.nb301", "spaces.nb301_arch", "spaces.common")
    parse, to_str, coerce = staticmethod(parse), staticmethod(to_str), staticmethod(coerce)
    canonical, sample, mutate = staticmethod(canonical), staticmethod(sample), staticmethod(mutate)

    def slots(self, arch):
        """One row per connection of each cell type (n<k>.in<j>, r<k>.in<j>); param: a conv or a FactorizedReduce."""
        rows = []
        for c, cell in zip(CELLS, coerce(arch)):
            for i, (op, src) in enumerate(cell):
                fr = c == "reduce" and op == "skip_connect" and src < 2          # FactorizedReduce
                rows.append({"cell": c, "slot": i, "label": f"{c[0]}{node_of(i)}.in{i % 2}", "op": SHORT[op],
                             "live": True, "param": op in CONVS or fr})
        return pd.DataFrame(rows)

    def edit(self, arch, i, op):
        """``arch`` with slot row i (normal 0..7, reduce 8..15) set to ``op`` (a short name); inputs stay."""
        cells = [list(c) for c in coerce(arch)]
        cells[i // 8][i % 8] = (self.long_op(op), cells[i // 8][i % 8][1])
        return coerce(cells)

    def draw(self, arch, table, ax=None, title=None):
        """Both cells with each connection coloured by its block (see nb301_draw)."""
        from .nb301_draw import draw_cells
        return draw_cells(coerce(arch), table, title, ax)

    def standalone(self, arch, recipe, in_channels, num_classes):
        """Stand-alone DARTS network: recipe.C channels, 3 * recipe.N + 2 cells, recipe.drop_path."""
        return Standalone(arch, recipe.C, recipe.N, in_channels, num_classes, recipe.drop_path)


SPACE = NB301()
