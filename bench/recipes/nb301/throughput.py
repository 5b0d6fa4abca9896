"""Stand-alone DARTS-net training throughput on the embedded data (mini NB301 ground truth, issue 11).

    python bench/recipes/nb301/throughput.py [--steps 8] [--levers]

Seconds per SGD step (batch 128, forward + backward + step) of stand-alone NB301 nets at a few mini scales, one
torch thread, for 4 sampled genotypes (sample:4, seed 0), and with --levers the cheap speed levers at one scale:
channels_last memory format, torch.compile (inductor, CPU), 2 threads. Prints a table; the machine's other load
moves absolute numbers, so compare rows measured together.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from closekit import data as datalib
from closekit.groundtruth.recipe import Recipe
from closekit.spaces import get
from closekit.spaces.nb301 import Standalone


def step_time(net, x, y, steps, compile_=False):
    """Median seconds of one training step (after 2 warm-up steps; with compile_, the first includes compiling)."""
    fwd = torch.compile(net) if compile_ else net
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(fwd(x), y).backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--levers", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = get("nb301")
    archs = space.sample_list(4, 0)
    scales = [(12, 8, 1), (12, 8, 2), (12, 16, 1), (16, 8, 1)]       # (image size, C, N): 3N+2 cells
    print("| image | C | N (cells) | params (mean) | s/step (median over archs) | s/epoch of 3k images |")
    print("|---|---|---|---|---|---|")
    for size, C, N in scales:
        d = datalib.load("embedded", image_size=size, train_portion=1.0, train_limit=128, augment=False)
        x, y = d.train.x[:128], d.train.y[:128]
        ts, ps = [], []
        for a in archs:
            torch.manual_seed(0)
            net = space.standalone(a, Recipe(space="nb301", C=C, N=N), d.in_channels, d.num_classes).train()
            ps.append(sum(p.numel() for p in net.parameters()))
            ts.append(step_time(net, x, y, args.steps))
        t = statistics.median(ts)
        print(f"| {size} | {C} | {N} ({3 * N + 2}) | {statistics.mean(ps):,.0f} | {t:.3f} | {t * 3000 / 128:.1f} |",
              flush=True)
    if not args.levers:
        return
    d = datalib.load("embedded", image_size=12, train_portion=1.0, train_limit=128, augment=False)
    x, y = d.train.x[:128], d.train.y[:128]
    print("\n| lever (12px, C=8, N=1) | s/step | speed-up |")
    print("|---|---|---|")
    base = None
    for name, kw, threads in (("baseline, 1 thread", {}, 1), ("channels_last", {"channels_last": True}, 1),
                              ("torch.compile", {"compile_": True}, 1), ("2 threads", {}, 2)):
        cl = kw.pop("channels_last", False)
        torch.set_num_threads(threads)
        ts = []
        for a in archs:
            torch.manual_seed(0)
            net = Standalone(a, 8, 1, d.in_channels, d.num_classes, channels_last=cl).train()
            try:
                ts.append(step_time(net, x, y, args.steps, **kw))
            except Exception as e:                          # e.g. no C compiler for inductor
                print(f"| {name} | failed: {type(e).__name__}: {str(e).splitlines()[0][:80]} | |")
                break
        else:
            t = statistics.median(ts)
            base = base or t
            print(f"| {name} | {t:.3f} | {base / t:.2f}x |", flush=True)
    torch.set_num_threads(1)


if __name__ == "__main__":
    main()
