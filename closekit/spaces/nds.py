"""NDS ResNet / ResNeXt-A supernets (CLOSE §4.3, aw_nas ``germ_close``) and stand-alone nets.

pycls AnyNet on CIFAR: 16-channel stem, 3 stages (strides 1/2/2), GAP, a 1x1-conv FC (``head_norm: mean`` centres the
pooled features: not in the reference). Convs hold maximum-width weights, sliced per architecture (``nds_ops``). A
stage runs an unshared first block, then its positions 0..d-2 each routed to a block of the stage's Bank (vanilla: one
per position; CLOSE: K, by the split table). Widths scale by ``channels_init / 16`` for mini runs.
"""
import pandas as pd
from torch import nn

from .. import sharing
from . import base
from .nds_arch import RESNET, RESNEXTA, STEM_W, STRIDES, Configs
from .nds_ops import BLOCKS, MeanBN, SlicedConv, bottleneck_width, init_weights, scaled, stem

MAX_W = 256                                              # the widest choice: the supernet's weights


def stages(design, arch, scale):
    """(depth, stride, w, w_b, groups) of each stage of ``arch`` at ``scale``."""
    for s, stride in enumerate(STRIDES):
        d, w, b, g = design.stage(arch, s)
        w = scaled(w, scale)
        yield d, stride, w, bottleneck_width(w, b, g), g


def blocks(design, arch, scale):
    """(stage, w_in, w, stride, w_b, groups) of every block of ``arch``'s stand-alone net at ``scale``, in order."""
    w_in = scaled(STEM_W, scale)
    for s, (d, stride, w, wb, g) in enumerate(stages(design, arch, scale)):
        for i in range(d):
            yield s, w_in, w, stride if i == 0 else 1, wb, g
            w_in = w


class Standalone(nn.Module):
    """One NDS configuration trained on its own (pycls AnyNet: affine BN, projection only where shape changes)."""

    def __init__(self, design, arch, in_channels, num_classes, scale=1.0):
        super().__init__()
        self.stem = stem(in_channels, scaled(STEM_W, scale))
        stages, self.widths = [[] for _ in STRIDES], [None] * len(STRIDES)
        for s, w_in, w, stride, wb, g in blocks(design, arch, scale):
            stages[s].append(BLOCKS[design.block](w_in, w, stride, proj=w_in != w or stride != 1, affine=True,
                                                  wb=wb, groups=g))
            self.widths[s] = (w, wb, g)
        self.stages = nn.ModuleList(map(nn.ModuleList, stages))
        self.fc = nn.Linear(self.widths[-1][0], num_classes)             # the last stage's width
        self.apply(init_weights)

    def forward(self, x):
        x = self.stem(x)
        for stage, (w, wb, g) in zip(self.stages, self.widths):
            for block in stage:
                x = block(x, w, wb, g)
        return self.fc(x.mean((2, 3)))


class Supernet(nn.Module, base.Supernet):
    """NDS supernet: per stage an unshared first block and a Bank of blocks for the positions after it."""
    cell_types, close_router, keys = ("stage1", "stage2", "stage3"), "table", ("head_norm", "sampler")

    def __init__(self, design, cfg, in_channels, num_classes):
        super().__init__()
        self.design, self.scale = design, cfg.channels_init / STEM_W
        plan = self.plan(cfg, own=self.positions)
        W, block = scaled(MAX_W, self.scale), BLOCKS[design.block]          # max width (and max bottleneck width)
        self.stem, w_in = stem(in_channels, scaled(STEM_W, self.scale)), scaled(STEM_W, self.scale)
        self.first, self.banks = nn.ModuleList(), nn.ModuleList()
        for stride in STRIDES:
            self.first.append(block(w_in, W, stride, proj=True, wb=W))
            self.banks.append(sharing.Bank(lambda: nn.ModuleDict({"block": block(W, W, 1, proj=False, wb=W)}),
                                           *plan[1:]))
            w_in = W
        self.head_norm = MeanBN(W, affine=False) if cfg.head_norm == "mean" else None   # not in the reference
        self.fc = SlicedConv(W, num_classes, 1, bias=True)            # the reference's 1x1-conv FC
        self.apply(init_weights)
        self._share(cfg, plan, self.banks, in_channels, num_classes)

    def coerce(self, arch):
        return self.design.coerce(arch)

    @property
    def positions(self):
        """Routed block positions per stage: the maximum depth less the unshared first block."""
        return self.design.max_depth - 1

    def own_blocks(self, arch):
        return {c: range(self.positions) for c in self.cell_types}

    def forward(self, x, arch, routing=None):
        arch = self.design.coerce(arch)
        routing = routing or self.route(arch)
        x = self.stem(x)
        for s, (d, _, w, wb, g) in enumerate(stages(self.design, arch, self.scale)):
            x = self.first[s](x, w, wb, g)
            for k in routing[self.cell_types[s]][:d - 1].argmax(1).tolist():
                x = self.banks[s].blocks[k]["block"](x, w, wb, g)
        x = x.mean((2, 3), keepdim=True)                                # [N, w3, 1, 1]
        if self.head_norm is not None:
            x = self.head_norm(x)
        return self.fc(x, self.net_args["num_classes"]).flatten(1)


class NDSSpace(base.Space):
    """An NDS design space (``nds_arch.Design``) with slots, drawing and supernets."""
    enumerations, supernet_cls = ("all",), Supernet
    modules = ("spaces.nds", "spaces.nds_arch", "spaces.nds_ops", "spaces.common")

    def __init__(self, name, design, params_prefix):
        self.name, self.design, self.params_prefix = name, design, params_prefix

    def parse(self, text):
        return self.design.parse(text)

    def to_str(self, arch):
        return self.design.to_str(arch)

    def coerce(self, x):
        return self.design.coerce(x)

    canonical = coerce                                      # every configuration is its own class

    def sample(self, generator=None):
        return self.design.sample(generator)

    def mutate(self, arch, generator=None):
        return self.design.mutate(arch, generator)

    def extremes(self):
        return self.design.extremes()

    def enumerate(self, kind):
        """'all': every configuration, as a lazy sequence (len 108^3 ResNet, 225^3 ResNeXt-A)."""
        return Configs(self.design) if kind == "all" else super().enumerate(kind)

    def params_file(self, kind):
        return f"nds/{self.params_prefix}-{kind}.yaml"

    def slots(self, arch):
        """One row per stage and block position: live when the stage is deep enough to use it."""
        arch, rows = self.coerce(arch), []
        for s in range(len(STRIDES)):
            d, w, b, g = self.design.stage(arch, s)
            op = f"w{w}" if self.design.block == "res_basic_block" else f"w{w} b{b:g} g{g}"
            for p in range(self.design.max_depth - 1):
                live = p < d - 1
                rows.append({"cell": f"stage{s + 1}", "slot": p, "label": f"s{s + 1}.p{p + 1}",
                             "op": op if live else "none", "live": live, "param": live})
        return pd.DataFrame(rows)

    def choices(self, arch):
        """One decision per aw_nas genotype key (depths.0, ..., then bot_muls.*, num_groups.*): key, choices, value."""
        return list(zip(self.design.keys, map(list, self.design.choices), self.coerce(arch)))

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
        """The smallest and the largest configurations by weights (as ``extremes``), and a mid-size one."""
        largest, smallest = self.extremes()
        middle = tuple(ch[len(ch) // 2] for ch in self.design.choices)
        return {"smallest": self.to_str(smallest), "middle": self.to_str(middle), "largest": self.to_str(largest)}

    def supernet(self, cfg, in_channels, num_classes):
        return Supernet(self.design, cfg, in_channels, num_classes)

    def standalone(self, arch, recipe, in_channels, num_classes):
        """Stand-alone net of one configuration; widths scaled by recipe.C / 16 (C: the stem width)."""
        return Standalone(self.design, self.coerce(arch), in_channels, num_classes, scale=recipe.C / STEM_W)

    def complexity(self, arch, in_channels=3, num_classes=10, image_size=32, scale=1.0):
        """(params, flops) of ``arch``'s stand-alone net as pycls counts them (flops: multiply-adds; BN: 2c params)."""
        design, arch = self.design, self.coerce(arch)
        params = flops = 0
        h = image_size

        def conv(c_in, c_out, k, stride=1, g=1):
            nonlocal params, flops, h
            h = (h + 2 * (k // 2) - k) // stride + 1
            params += k * k * c_in // g * c_out + 2 * c_out          # + its BN
            flops += k * k * c_in // g * c_out * h * h

        conv(in_channels, scaled(STEM_W, scale), 3)
        for _, w_in, w, stride, wb, g in blocks(design, arch, scale):
            if design.block == "res_basic_block":
                conv(w_in, w, 3, stride), conv(w, w, 3)
            else:
                conv(w_in, wb, 1), conv(wb, wb, 3, stride, g), conv(wb, w, 1)
            if w_in != w or stride != 1:                # projection shortcut, at the block's output resolution
                conv(w_in, w, 1)
        w_out = scaled(design.stage(arch, len(STRIDES) - 1)[1], scale)          # the last stage's width feeds the FC
        return params + w_out * num_classes + num_classes, flops + w_out * num_classes + num_classes


RESNET_SPACE = NDSSpace("nds-resnet", RESNET, "resnet")            # basic blocks, 108^3 configurations
RESNEXTA_SPACE = NDSSpace("nds-resnexta", RESNEXTA, "resnexta")    # bottlenecks, 225^3 configurations
