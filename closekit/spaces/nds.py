"""NDS ResNet / ResNeXt-A supernets (CLOSE §4.3, aw_nas ``germ_close``): stages, an unshared first block, a bank.

Skeleton (pycls AnyNet on CIFAR, as the reference): conv3x3 stem of 16 channels + BN + ReLU, 3 stages with strides
1/2/2, GAP + a 1x1-conv FC (``head_norm: mean`` centres the pooled features first: not in the reference, a switch
for studying the mini supernets' slow one-shot learning, see bench/nds_supernet_fit.py). Supernet BN is non-affine;
the stem's is affine. Every conv holds the maximum-width weights and an architecture uses its ordinal slice (layers
and blocks: ``nds_ops``). A stage runs its first block (w_in -> w, stride, projection shortcut), then d - 1 blocks at
positions p = 0..d-2, each position routed to one block of the stage's Bank:
  vanilla: one own block per position (the own router), P = max depth - 1 (23 ResNet, 15 ResNeXt-A);
  CLOSE:   K shared blocks (17 / 13) routed by ``sharing.TableRouter``, the same table for the 3 stages; each
           curriculum level splits one group of positions, WIT from the split block. One block per position in
           training and evaluation: CLOSE costs what vanilla costs.
Widths scale by ``channels_init / 16`` (the stem width; 16 = the reference) for mini runs; choices are kept.
"""
from torch import nn

from .. import sharing
from . import base
from .nds_ops import BLOCKS, MeanBN, SlicedConv, Stem, bottleneck_width, init_weights, scaled


class Standalone(nn.Module):
    """One NDS configuration trained on its own (pycls AnyNet: affine BN, projection only where shape changes)."""

    def __init__(self, design, arch, in_channels, num_classes, scale=1.0):
        super().__init__()
        self.stem, w_in, stages = Stem(in_channels, scaled(16, scale)), scaled(16, scale), []
        self.widths = []
        for s, stride in enumerate((1, 2, 2)):
            d, w, b, g = design.stage(arch, s)
            w = scaled(w, scale)
            wb = bottleneck_width(w, b, g)
            blocks = []
            for i in range(d):
                st = stride if i == 0 else 1
                blocks.append(BLOCKS[design.block](w_in, w, st, proj=w_in != w or st != 1, affine=True, wb=wb,
                                                   groups=g))
                w_in = w
            stages.append(nn.ModuleList(blocks))
            self.widths.append((w, wb, g))
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(w_in, num_classes)
        self.apply(init_weights)

    def forward(self, x):
        x = self.stem(x)
        for blocks, (w, wb, g) in zip(self.stages, self.widths):
            for blk in blocks:
                x = blk(x, w, wb, g)
        return self.fc(x.mean((2, 3)))


def complexity(design, arch, in_channels=3, num_classes=10, image_size=32, scale=1.0):
    """(params, flops) of the stand-alone net, counted as pycls does: conv k*k*c_in/g*c_out (+ h*w for flops),
    BN 2c params, FC c*classes + classes; flops are multiply-adds."""
    params = flops = 0
    h = image_size

    def conv(c_in, c_out, k, stride=1, g=1):
        nonlocal params, flops, h
        h = (h + 2 * (k // 2) - k) // stride + 1
        params += k * k * c_in // g * c_out + 2 * c_out          # + its BN
        flops += k * k * c_in // g * c_out * h * h

    w_in = scaled(16, scale)
    conv(in_channels, w_in, 3)
    for s, stride in enumerate((1, 2, 2)):
        d, w, b, g = design.stage(arch, s)
        w = scaled(w, scale)
        wb = bottleneck_width(w, b, g)
        for i in range(d):
            st, h0 = (stride if i == 0 else 1), h
            if w_in != w or st != 1:                           # projection shortcut
                conv(w_in, w, 1, st)
                h = h0
            if design.block == "res_basic_block":
                conv(w_in, w, 3, st), conv(w, w, 3)
            else:
                conv(w_in, wb, 1), conv(wb, wb, 3, st, g), conv(wb, w, 1)
            w_in = w
    return params + w_in * num_classes + num_classes, flops + w_in * num_classes + num_classes


class Supernet(nn.Module, base.Supernet):
    """NDS supernet: per stage an unshared first block and a Bank (vanilla: one block per position; CLOSE: K
    blocks routed by the split table)."""
    cell_types, close_router, keys = tuple(f"stage{s}" for s in (1, 2, 3)), "table", ("head_norm",)

    def __init__(self, design, cfg, in_channels, num_classes):
        super().__init__()
        self.design, self.scale = design, cfg.channels_init / 16
        plan = self.plan(cfg, own=self.positions)
        W = scaled(256, self.scale)                                  # max width (and max bottleneck width)
        block = BLOCKS[design.block]
        self.stem, w_in = Stem(in_channels, scaled(16, self.scale)), scaled(16, self.scale)
        self.first, self.banks = nn.ModuleList(), nn.ModuleList()
        for stride in (1, 2, 2):
            self.first.append(block(w_in, W, stride, proj=True, wb=W))
            self.banks.append(sharing.Bank(lambda: nn.ModuleDict({"block": block(W, W, 1, proj=False, wb=W)}),
                                           *plan[1:]))
            w_in = W
        self.head_norm = MeanBN(W, affine=False) if cfg.head_norm == "mean" else None   # not in the reference
        self.fc = SlicedConv(W, num_classes, 1, bias=True)            # the reference's 1x1-conv FC
        self.apply(init_weights)
        self._share(cfg, plan, self.banks, in_channels, num_classes)

    @property
    def positions(self):
        """Routed block positions per stage: the maximum depth less the unshared first block."""
        return self.design.max_depth - 1

    def coerce(self, arch):
        return self.design.coerce(arch)

    def own_blocks(self, arch):
        return {c: range(self.positions) for c in self.cell_types}

    def widths(self, arch):
        """[(depth, w, w_b, groups)] of the 3 stages at this net's scale."""
        out = []
        for s in range(3):
            d, w, b, g = self.design.stage(arch, s)
            w = scaled(w, self.scale)
            out.append((d, w, bottleneck_width(w, b, g), g))
        return out

    def forward(self, x, arch, routing=None):
        arch = self.design.coerce(arch)
        routing = routing or self.route(arch)
        x = self.stem(x)
        for s, (d, w, wb, g) in enumerate(self.widths(arch)):
            x = self.first[s](x, w, wb, g)
            sel = routing[self.cell_types[s]][:d - 1].argmax(1).tolist()
            for k in sel:
                x = self.banks[s].blocks[k]["block"](x, w, wb, g)
        x = x.mean((2, 3), keepdim=True)                                # [N, w3, 1, 1]
        if self.head_norm is not None:
            x = self.head_norm(x)
        return self.fc(x, self.net_args["num_classes"]).flatten(1)


class NDSSpace(base.Space):
    """An NDS design space (``nds_arch.Design``) with slots, drawing and supernets."""
    enumerations, supernet_cls = ("all",), Supernet
    modules = ("spaces.nds", "spaces.nds_arch", "spaces.nds_ops", "spaces.nds_resnet", "spaces.nds_resnexta")

    def __init__(self, name, design, params_prefix):
        self.name, self.design, self.params_prefix = name, design, params_prefix

    def parse(self, text):
        return self.design.parse(text)

    def to_str(self, arch):
        return self.design.to_str(self.design.coerce(arch))

    def coerce(self, x):
        return self.design.coerce(x)

    def canonical(self, arch):
        """Every configuration is its own class."""
        return self.design.coerce(arch)

    def sample(self, generator):
        return self.design.sample(generator)

    def mutate(self, arch, generator):
        return self.design.mutate(self.coerce(arch), generator)

    def enumerate(self, kind):
        """'all': every configuration, as a lazy sequence (len 108^3 ResNet, 225^3 ResNeXt-A)."""
        from .nds_arch import Configs
        if kind != "all":
            return super().enumerate(kind)
        return Configs(self.design)

    def params_file(self, kind):
        """params/nds/<space>-<kind>.yaml (relative to params/)."""
        return f"nds/{self.params_prefix}-{kind}.yaml"

    def slots(self, arch):
        """One row per stage and block position: live when the stage is deep enough to use it."""
        import pandas as pd
        arch, rows = self.coerce(arch), []
        P = self.design.max_depth - 1
        for s in range(3):
            d, w, b, g = self.design.stage(arch, s)
            op = f"w{w}" if self.design.block == "res_basic_block" else f"w{w} b{b:g} g{g}"
            for p in range(P):
                live = p < d - 1
                rows.append({"cell": f"stage{s + 1}", "slot": p, "label": f"s{s + 1}.p{p + 1}",
                             "op": op if live else "none", "live": live, "param": live})
        return pd.DataFrame(rows)

    def choices(self, arch):
        """One decision per aw_nas genotype key (depths.0, ..., widths.2, then bot_muls.*, num_groups.*): (the key,
        its choices, its value)."""
        d = self.design
        return list(zip(d.keys, [list(c) for c in d.choices], self.coerce(arch)))

    def edit(self, arch, i, value):
        """``arch`` with decision i (the order of ``choices``) set to ``value``."""
        arch = list(self.coerce(arch))
        arch[i] = value
        return self.design.check(arch)

    def draw(self, arch, table, ax=None, title=None):
        """The three stages as rows of positions, coloured by block (see nds_draw)."""
        from .nds_draw import draw_stages
        return draw_stages(table, title, ax)

    def notable(self):
        """The smallest and the largest configurations, and a mid-size one."""
        c = self.design.choices
        small = tuple(ch[0] for ch in c)
        big = tuple(ch[-1] for ch in c)
        mid = tuple(ch[len(ch) // 2] for ch in c)
        return {"smallest": self.to_str(small), "middle": self.to_str(mid), "largest": self.to_str(big)}

    def supernet(self, cfg, in_channels, num_classes):
        return Supernet(self.design, cfg, in_channels, num_classes)

    def standalone(self, arch, recipe, in_channels, num_classes):
        """Stand-alone net of one configuration; widths scaled by recipe.C / 16 (C: the stem width)."""
        return Standalone(self.design, self.coerce(arch), in_channels, num_classes, scale=recipe.C / 16)

    def complexity(self, arch, in_channels=3, num_classes=10, image_size=32, scale=1.0):
        """(params, flops) of the stand-alone net of ``arch`` (pycls counting; reference scale by default)."""
        return complexity(self.design, self.coerce(arch), in_channels, num_classes, image_size, scale)
