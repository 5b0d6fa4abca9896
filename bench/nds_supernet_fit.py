"""Does the mini NDS supernet fit its training data? (issue 12: the one-shot NDS supernets of CLOSE §4.3, scaled down)

Trains the supernet of a params file for a few epochs with SGD, on one fixed sampled configuration (``fixed``), on
a new uniformly sampled configuration every step (``random``, one-shot training), or with only some decisions
resampled every step and the others kept at the fixed configuration's (``depth``, ``width``, ``bot_mul``,
``groups``; NDS configurations are (depths, widths, bot_muls, groups) x 3 stages, ResNet's without the last two),
and prints the training loss and accuracy per epoch, and the last epoch's mean loss by the last stage's width.
Chance is 10 % on the embedded data (loss ln 10 = 2.30).

    PYTHONPATH=. python bench/nds_supernet_fit.py params/nds/resnexta-mini-vanilla.yaml fixed
    PYTHONPATH=. python bench/nds_supernet_fit.py params/nds/resnexta-mini-vanilla.yaml width --epochs 3
    PYTHONPATH=. python bench/nds_supernet_fit.py params/nds/resnexta-mini-vanilla.yaml width --set channels_init=8
    PYTHONPATH=. python bench/nds_supernet_fit.py params/nds/resnexta-mini-vanilla.yaml random --set head_norm=mean
"""
import argparse

import torch
import torch.nn.functional as F

from closekit import data as datalib
from closekit.config import parse_overrides as _overrides
from closekit.config import RunConfig
from closekit.train import build, make_optimizer

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("params")
MODES = {"depth": 0, "width": 1, "bot_mul": 2, "groups": 3}      # which block of three stage decisions
p.add_argument("mode", choices=("fixed", "random", *MODES))
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config values (channels_init=8)")
args = p.parse_args()
torch.set_num_threads(1)
cfg = RunConfig.from_yaml(args.params, **{"truth": None, "archs": "sample:10", "seed": args.seed,
                                          **_overrides(args.set)})
space, d, net = build(cfg)                                         # seeded with args.seed
opt, _ = make_optimizer(net.parameters(), cfg)                    # the trainer's SGD; no scheduler in a fit check
gen = torch.Generator().manual_seed(args.seed)
fixed = space.sample(gen)
net.train()
print(f"{cfg.space} {cfg.supernet}, {args.mode}" + (f" ({space.to_str(fixed)})" if args.mode == "fixed" else ""))
for epoch in range(1, args.epochs + 1):
    loss_sum = correct = n = 0
    by_width = {}                                                 # last stage's width -> losses
    for x, y in datalib.batches(d.train, cfg.batch_size, shuffle=True, generator=gen, augment=cfg.augment):
        arch = fixed if args.mode == "fixed" else space.sample(gen)   # fixed: the data order of no sampling
        if args.mode in MODES:                                    # resample stage decisions 3i..3i+2 only
            i = 3 * MODES[args.mode]
            arch = fixed[:i] + arch[i:i + 3] + fixed[i + 3:]
        out = net(x, arch)
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        by_width.setdefault(arch[5], []).append(loss.item())
        loss_sum, correct, n = loss_sum + loss.item() * len(y), correct + int((out.argmax(1) == y).sum()), n + len(y)
    print(f"epoch {epoch}: train loss {loss_sum / n:.3f}, train acc {correct / n:.3f}", flush=True)
print("last epoch's loss by last-stage width:", {w: round(sum(v) / len(v), 2) for w, v in sorted(by_width.items())})
