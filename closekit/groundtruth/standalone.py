"""Stand-alone training of one architecture under a Recipe (the mini ground truth's unit of work, CLOSE §4)."""
import math
import time

import torch
import torch.nn.functional as F

from .. import data as datalib
from ..spaces import get as get_space

EVAL_BATCH = 500                         # images per scoring batch (no gradient: memory is not the limit)


def load_data(recipe):
    """The recipe's dataset, in memory."""
    return datalib.load(recipe.dataset, **recipe.data_kwargs())


def train_one(arch, seed, recipe, data, device=None):
    """Train one arch from scratch (seeded, CPU-deterministic): arch, seed, acc, loss (eval split), params, seconds."""
    t0, device, space = time.time(), device or recipe.device, get_space(recipe.space)
    arch, held = space.canonical_str(arch), getattr(data, recipe.eval_split)
    held = datalib.Split(held.x[:recipe.eval_limit], held.y[:recipe.eval_limit])
    if not len(held):
        raise ValueError(f"recipe eval_split={recipe.eval_split} is empty (valid needs train_portion < 1)")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = space.standalone(arch, recipe, data.in_channels, data.num_classes).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                          weight_decay=recipe.weight_decay)
    steps = recipe.epochs * math.ceil(len(data.train) / recipe.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=0.0)
    net.train()
    for _ in range(recipe.epochs):
        for x, y in datalib.batches(data.train, recipe.batch_size, shuffle=True, generator=gen,
                                    augment=recipe.augment, device=device):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
            sched.step()
    net.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for x, y in datalib.batches(held, EVAL_BATCH, shuffle=False, device=device):
            out = net(x)
            loss += F.cross_entropy(out, y, reduction="sum").item()
            correct += int((out.argmax(1) == y).sum())
    return dict(arch=arch, seed=int(seed), acc=correct / len(held), loss=loss / len(held),
                params=sum(p.numel() for p in net.parameters()), seconds=round(time.time() - t0, 3))
