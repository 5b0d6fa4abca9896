"""Stand-alone NDS training throughput on the embedded data (issue 12): images/s of SGD steps (batch 128, 12x12)
for sampled configurations at a width scale, plain vs channels_last vs torch.compile, 1 or 2 torch threads.

    PYTHONPATH=. python bench/recipes/nds/throughput.py --space nds-resnet --C 4 --archs 6 --steps 8
"""
import argparse
import time

import torch
import torch.nn.functional as F

from closekit import data as datalib
from closekit import spaces
from closekit.groundtruth.recipe import Recipe


def rate(space, arch, recipe, x, y, steps, layout, threads):
    """Images per second of ``steps`` SGD steps after 2 warm-up steps (compile: warm-up includes compilation)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = space.standalone(arch, recipe, x.shape[1], 10)
    if layout == "channels_last":
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    step_net = torch.compile(net) if layout == "compile" else net
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(step_net(x), y).backward()
        opt.step()
    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(x) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="nds-resnet")
    ap.add_argument("--C", type=int, default=4)
    ap.add_argument("--image-size", type=int, default=12)
    ap.add_argument("--archs", type=int, default=6)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--layouts", default="plain,channels_last,compile")
    ap.add_argument("--threads", default="1,2")
    a = ap.parse_args()
    space, recipe = spaces.get(a.space), Recipe(space=a.space, C=a.C, image_size=a.image_size)
    data = datalib.load("embedded", image_size=a.image_size, train_portion=1.0)
    x, y = data.train.x[:128].float(), data.train.y[:128]
    archs = space.sample_list(a.archs, 0)
    print(f"{a.space} C={a.C} {a.image_size}px batch 128, {a.archs} sampled configs (seed 0), {a.steps} steps each")
    base = None
    for threads in map(int, a.threads.split(",")):
        for layout in a.layouts.split(","):
            rates = [rate(space, arch, recipe, x, y, a.steps, layout, threads) for arch in archs]
            total = len(rates) / sum(1 / r for r in rates)          # harmonic mean: images/s over the set
            base = base or total
            print(f"threads {threads}  {layout:14s} {total:8.0f} img/s  x{total / base:.2f}")


if __name__ == "__main__":
    main()
