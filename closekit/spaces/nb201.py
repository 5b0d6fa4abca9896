"""NAS-Bench-201 supernets (CLOSE §4.1): vanilla and CLOSENet share one macro network and one cell.

Stem conv3x3 + BN; three stages of N cells at C / 2C / 4C joined by residual reduction blocks; BN-ReLU,
global pooling, dropout, linear head. Each cell holds a Bank of op-sets; a router picks the block of every
edge (vanilla: edge i -> block i; CLOSE: the GATE over the active GLOW blocks). Cell BN is non-affine.
"""
import torch
from torch import nn

from .. import sharing
from ..gates import Gate
from .nb201_arch import EDGES, OPS, NB201Archs, coerce, live_edges, parse, to_matrix, to_str


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv(k, stride) -> BN."""

    def __init__(self, c_in, c_out, k, stride=1, affine=False):
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


def make_op(name, C, affine=False):
    """One NB201 primitive on C channels (`none` is never built: its edges are not run)."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    return ReLUConvBN(C, C, 1 if name == "nor_conv_1x1" else 3, affine=affine)


def opset(C, affine=False):
    """One full set of NB201 candidate ops (a GLOW block)."""
    return nn.ModuleDict({name: make_op(name, C, affine) for name in OPS[1:]})


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

    def __init__(self, C, num_blocks):
        super().__init__()
        self.bank = sharing.Bank(lambda: opset(C), num_blocks)

    def forward(self, x, arch, live, gates, sel, mode, touched):
        return run_dag(x, live, lambda e, h: sharing.routed(self.bank, OPS[arch[e]], h, gates[e], sel[e], mode, touched))


class FixedCell(nn.Module):
    """Stand-alone cell: one op per live edge, affine BN (NB201 stand-alone training)."""

    def __init__(self, C, arch):
        super().__init__()
        self.live = live_edges(arch)
        self.ops = nn.ModuleDict({str(e): make_op(OPS[a], C, affine=True) for e, a in enumerate(arch) if self.live[e]})

    def forward(self, x):
        return run_dag(x, self.live, lambda e, h: self.ops[str(e)](h))


class MacroNet(nn.Module):
    """Stem conv3x3-BN; three stages of N cells at C, 2C, 4C joined by ResBlocks; BN-ReLU, pool, dropout, linear."""

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

    def run(self, x, *cell_args):
        """Logits; cells get ``cell_args`` after their input."""
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x) if isinstance(layer, ResBlock) else layer(x, *cell_args)
        return self.classifier(self.head(x).mean((2, 3)))       # global average pooling


class Standalone(MacroNet):
    """One NB201 architecture trained on its own (the mini benchmark's networks)."""

    def __init__(self, arch, C, N, in_channels, num_classes):
        arch = coerce(arch)
        super().__init__(C, N, in_channels, num_classes, 0.0, lambda c: FixedCell(c, arch))

    def forward(self, x):
        return self.run(x)


class Supernet(MacroNet):
    """NB201 supernet: vanilla (6 own blocks per cell) or CLOSENet (K GLOW blocks + GATE, curriculum)."""

    def __init__(self, cfg, in_channels, num_classes):
        close = cfg.supernet == "close"
        num_blocks = cfg.num_blocks if close else len(EDGES)
        super().__init__(cfg.channels_init, cfg.cells_per_stage, in_channels, num_classes, cfg.dropout,
                         lambda c: Cell(c, num_blocks))
        self.close, self.num_blocks = close, num_blocks
        self.gate_forward, self.compat, self.mlp_growth = cfg.gate_forward, cfg.aw_nas_compat, cfg.mlp_growth
        if not self.close:
            self.router = sharing.OwnRouter(len(EDGES))
        elif cfg.router == "random":
            self.router = sharing.RandomRouter(len(EDGES))
        else:
            self.router = Gate(EDGES, len(OPS), 4, cfg.num_blocks, level=cfg.router, op_dim=cfg.gates_op_dim,
                               node_dim=cfg.gates_node_dim, hidden=cfg.gates_hidden, gcn_dims=cfg.gates_gcn_dims,
                               mlp_hidden=cfg.mlp_hidden, mlp_dropout=cfg.mlp_dropout,
                               temperature=cfg.gumbel_temperature)
        # active blocks; 0 until the first curriculum event (vanilla: all of them, always)
        self.register_buffer("level", torch.tensor(0 if self.close else self.num_blocks))
        self.touched = set()

    @property
    def cells(self):
        return [m for m in self.layers if isinstance(m, Cell)]

    def route(self, arch, *, sample=True, generator=None):
        """Routing [6, level] for one architecture (one-hot forward value)."""
        arch, level = coerce(arch), int(self.level)
        if level < 1:
            raise RuntimeError("supernet has no active block yet: call grow(1) (the trainer does at epoch 1)")
        if isinstance(self.router, Gate) and level == 1 and not self.compat:
            return torch.ones(len(EDGES), 1, device=self.level.device)  # GATE skipped while L = 1
        adj = torch.tensor(to_matrix(arch), device=self.level.device)
        return self.router(adj, level, sample=sample, generator=generator)

    def forward(self, x, arch, gates=None):
        arch = coerce(arch)
        if gates is None:
            gates = self.route(arch)
        mode = self.gate_forward if (self.training and gates.requires_grad) else "fixed"
        sel = gates.detach().argmax(1).tolist()                    # one device sync per step
        return self.run(x, arch, live_edges(arch), gates, sel, mode, self.touched)

    def grow(self, new_level, wit_parent):
        """Curriculum event: activate block ``new_level - 1`` (WIT from ``wit_parent``, GATE MLP growth).

        Returns the GATE params that were re-initialised (their optimizer state should be reset). With
        ``aw_nas_compat`` the grown MLP layers become new Parameter objects, which the optimizer does not track.
        """
        assert self.close and new_level == int(self.level) + 1 <= self.num_blocks
        self.level.fill_(new_level)
        reset = []
        if isinstance(self.router, Gate) and (new_level > 1 or self.mlp_growth != "inherit"):
            if self.compat:
                self.router.replace_grown(new_level, self.mlp_growth, new_level - 2)
            else:
                reset = self.router.grow(new_level, self.mlp_growth, new_level - 2)
        if new_level > 1:
            for cell in self.cells:
                cell.bank.wit(new_level - 1, wit_parent)
        return reset


class NB201(NB201Archs):
    """The NB201 space: architectures (NB201Archs) plus its supernets."""
    name = "nb201"
    num_edges = len(EDGES)
    parse, to_str = staticmethod(parse), staticmethod(to_str)

    def supernet(self, cfg, in_channels, num_classes):
        """Vanilla or CLOSE supernet for ``cfg``."""
        return Supernet(cfg, in_channels, num_classes)

    def standalone(self, arch, C, N, in_channels, num_classes):
        """Stand-alone network of one architecture (C channels, N cells per stage)."""
        return Standalone(arch, C, N, in_channels, num_classes)


SPACE = NB201()
