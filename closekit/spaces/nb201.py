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


def opset(C, affine=False):
    """One full set of NB201 candidate ops (a GLOW block); `none` is never run."""
    return nn.ModuleDict({
        "skip_connect": nn.Identity(),
        "nor_conv_1x1": ReLUConvBN(C, C, 1, affine=affine),
        "nor_conv_3x3": ReLUConvBN(C, C, 3, affine=affine),
        "avg_pool_3x3": nn.AvgPool2d(3, 1, 1, count_include_pad=False),
    })


class ResBlock(nn.Module):
    """NB201 reduction block: two ReLU-Conv3x3-BN (first stride 2) + avgpool-conv1x1 shortcut."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, affine=True)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, affine=True)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class Cell(nn.Module):
    """4-node DAG cell; every live edge's op is drawn from the bank block its router picked."""

    def __init__(self, C, num_blocks):
        super().__init__()
        self.bank = sharing.Bank(lambda: opset(C), num_blocks)

    def forward(self, x, arch, live, gates, sel, mode, touched):
        nodes = [x]
        for j in range(1, 4):
            acc = None
            for e, (to, fr) in enumerate(EDGES):
                if to == j and live[e]:
                    y = sharing.routed(self.bank, OPS[arch[e]], nodes[fr], gates[e], sel[e], mode, touched)
                    acc = y if acc is None else acc + y
            nodes.append(acc)
        return nodes[3] if nodes[3] is not None else torch.zeros_like(x)


class Supernet(nn.Module):
    """NB201 supernet: vanilla (6 own blocks per cell) or CLOSENet (K GLOW blocks + GATE, curriculum)."""

    def __init__(self, cfg, in_channels, num_classes):
        super().__init__()
        C, N = cfg.channels_init, cfg.cells_per_stage
        self.close = cfg.supernet == "close"
        self.num_blocks = cfg.num_blocks if self.close else len(EDGES)
        self.gate_forward, self.compat, self.mlp_growth = cfg.gate_forward, cfg.aw_nas_compat, cfg.mlp_growth
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers, c = [], C
        for stage in range(3):
            if stage:
                layers.append(ResBlock(c, 2 * c))
                c *= 2
            layers += [Cell(c, self.num_blocks) for _ in range(N)]
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.classifier = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(c, num_classes))
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
        live, sel = live_edges(arch), gates.detach().argmax(1).tolist()   # one device sync per step
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, arch, live, gates, sel, mode, self.touched) if isinstance(layer, Cell) else layer(x)
        return self.classifier(self.head(x).mean((2, 3)))       # global average pooling

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


SPACE = NB201()
