"""Training step time of the CLOSENet supernet relative to the vanilla supernet, per GATE forward mode.

What it measures: the wall time of one full training step (``closekit.train.Trainer.step``: sample an
architecture, forward, cross-entropy, backward, the supernet's after-backward hook, grad clipping, SGD step)
of CLOSENet with 1..5 active GLOW blocks under each ``gate_forward`` mode (all | others_no_grad | selected),
divided by the step time of the vanilla NB201 supernet measured side by side in the same run. Random N(0,1)
inputs and random labels; every configuration sees the same sequence of sampled architectures (and the same
global RNG state for GATE Gumbel noise and dropout). Repetitions are interleaved: each of R rounds times
every configuration once (``--steps`` steps after ``--warmup`` untimed ones), and the per-configuration median
over rounds is reported, so machine-load drift hits all configurations alike.

At L=1 the GATE is skipped (routing is trivially block 0; default aw_nas_compat=False), so the three modes run
the same code path; that configuration is measured once and shown in every row.

Scales: paper = CIFAR-sized 32x32x3 input, C=16, N=5, batch 256, 10 classes; small = 16x16x1, C=8, N=1.
``--space nb301``: the DARTS macro, paper = 32x32x3, C=16, N=2 (8 cells), small = 16x16x1, C=8, N=1 (5 cells),
with the reference's NB301 GATE dims (32/32/32, GCN 4 x 64).
Target: others_no_grad at 5 blocks <= 2.5x vanilla (the reference's `all` is about 5x).

NDS row (``--nds``): the NDS ResNet / ResNeXt-A CLOSE supernet (first level after epoch 1 and the final level) over
the vanilla one, widths x 1/8, 12x12x1 input, batch 128, the same sampled configurations; one block runs per
position in both, so the target is ~1.0x.

Run:  python bench/step_time.py                  # both scales, CPU-sized defaults (under ~10 min on 2 cores)
      python bench/step_time.py --nds --threads 1 # the NDS rows only
      python bench/step_time.py --quick          # smoke run: small scale, few steps
      python bench/step_time.py --device cuda --scale paper --steps 20 --rounds 5 --json out.json
      python bench/step_time.py --space nb301 --scale small   # the NB301 row
"""
import argparse
import json
import statistics
import time

import torch

from closekit import RunConfig, Trainer
from closekit.spaces import get

MODES = ("all", "others_no_grad", "selected")
SCALES = {  # name: (image size, in channels, C, N)
    "paper": (32, 3, 16, 5),
    "small": (16, 1, 8, 1),
}
SPACE_SCALES = {"nb201": SCALES, "nb301": {"paper": (32, 3, 16, 2), "small": (16, 1, 8, 1)}}
SPACE_CFG = {"nb201": {}, "nb301": dict(space="nb301", gates_op_dim=32, gates_node_dim=32, gates_hidden=32,
                                        gates_gcn_dims=(64, 64, 64, 64))}
# defaults per (device kind, scale): steps per round, rounds, warmup steps; CPU paper scale is heavy (seconds/step)
DEFAULTS = {("cpu", "paper"): (1, 3, 1), ("cpu", "small"): (5, 5, 2),
            ("cuda", "paper"): (10, 5, 3), ("cuda", "small"): (20, 5, 3)}
QUICK = (2, 2, 1)
BATCH, CLASSES, SEED = 256, 10, 0


def build(space, scale, supernet, mode, level, device):
    """A trainer of the supernet at curriculum level ``level`` (epoch_start of the schedule's epochs)."""
    size, cin, C, N = SPACE_SCALES[space.name][scale]
    cfg = RunConfig(supernet=supernet, channels_init=C, cells_per_stage=N, num_blocks=5, cl_schedule=(1, 2, 3, 4, 5),
                    gate_forward=mode, batch_size=BATCH, device=device, seed=SEED, **SPACE_CFG[space.name])
    net = space.supernet(cfg, in_channels=cin, num_classes=CLASSES)
    net.epoch_start(level)
    net.to(device).train()
    return Trainer(net, None, cfg, space=space, log=lambda *_: None)


def run_steps(trainer, x, y, n, device):
    """Wall seconds of ``n`` training steps, from a fixed architecture/RNG sequence."""
    trainer.arch_gen.manual_seed(SEED)
    torch.manual_seed(SEED)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        trainer.step(x, y)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench_scale(space, scale, device, steps, rounds, warmup):
    size, cin, C, N = SPACE_SCALES[space.name][scale]
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(BATCH, cin, size, size, generator=g).to(device)
    y = torch.randint(CLASSES, (BATCH,), generator=g).to(device)
    keys = [("vanilla", None, 0)] + [("close", m, L) for L in range(1, 6) for m in (MODES if L > 1 else MODES[:1])]
    nets = {k: build(space, scale, k[0], k[1] or "all", k[2], device) for k in keys}
    for k in keys:                                   # warm-up (allocator, kernels), not timed
        if warmup:
            run_steps(nets[k], x, y, warmup, device)
    times = {k: [] for k in keys}
    for r in range(rounds):
        for k in keys:
            times[k].append(run_steps(nets[k], x, y, steps, device) / steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    van = med[keys[0]]
    ratios = {m: [med[("close", m if L > 1 else "all", L)] / van for L in range(1, 6)] for m in MODES}
    return {"vanilla_ms": 1e3 * van, "ratios": ratios, "steps": steps, "rounds": rounds, "warmup": warmup,
            "ms": {f"{k[0]}/{k[1] or '-'}/L{k[2]}": [1e3 * t for t in v] for k, v in times.items()}}


NDS = {"nds-resnet": (17, (1,) * 9 + (2, 2, 3, 3, 4, 4, 5, 5)), "nds-resnexta": (13, (1,) * 9 + (2, 3, 4, 5))}


def bench_nds(name, device, steps, rounds, warmup, C=2, size=12, batch=128):
    """Median step time of CLOSE at level 9 and at the final level over vanilla's, same archs (interleaved)."""
    K, sched = NDS[name]
    space = get(name)
    g = torch.Generator().manual_seed(SEED)
    x, y = torch.randn(batch, 1, size, size, generator=g).to(device), torch.randint(CLASSES, (batch,), generator=g)
    trainers = {}
    for key, sn, epoch in (("vanilla", "vanilla", 1), ("close L9", "close", 1), (f"close L{K}", "close", 5)):
        cfg = RunConfig(space=name, supernet=sn, channels_init=C, num_blocks=K, cl_schedule=sched, batch_size=batch,
                        weight_decay=5e-5, grad_clip=None, device=device, seed=SEED)
        net = space.supernet(cfg, in_channels=1, num_classes=CLASSES)
        for e in range(1, epoch + 1):
            net.epoch_start(e)
        trainers[key] = Trainer(net.to(device).train(), None, cfg, space=space, log=lambda *_: None)
    for t in trainers.values():
        if warmup:
            run_steps(t, x, y.to(device), warmup, device)
    times = {k: [] for k in trainers}
    for _ in range(rounds):
        for k, t in trainers.items():
            times[k].append(run_steps(t, x, y.to(device), steps, device) / steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"vanilla_ms": 1e3 * med["vanilla"], "ratios": {k: med[k] / med["vanilla"] for k in med if k != "vanilla"},
            "ms": {k: [1e3 * t for t in v] for k, v in times.items()}, "steps": steps, "rounds": rounds}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", choices=("paper", "small", "both"), default=None,
                   help="default: both (--quick: small)")
    p.add_argument("--steps", type=int, help="timed steps per configuration per round (default: per scale/device)")
    p.add_argument("--rounds", type=int, help="interleaved rounds; the median over rounds is reported")
    p.add_argument("--warmup", type=int, help="untimed steps per configuration before the first round")
    p.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"), help="auto: cuda if available")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true", help="smoke run: %d steps x %d rounds, %d warm-up" % QUICK)
    p.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    p.add_argument("--nds", action="store_true", help="only the NDS rows (CLOSE split table vs vanilla)")
    p.add_argument("--space", default="nb201", choices=tuple(SPACE_SCALES), help="search space (default nb201)")
    a = p.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    if a.threads:
        torch.set_num_threads(a.threads)
    scales = {"both": ["small", "paper"], None: ["small"] if a.quick else ["small", "paper"]}.get(a.scale, [a.scale])
    if a.nds:
        steps, rounds, warmup = a.steps or 5, a.rounds or 3, a.warmup if a.warmup is not None else 1
        out = {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(), "nds": {}}
        print(f"NDS CLOSE step time / vanilla step time  device={device}  threads={torch.get_num_threads()}  "
              f"batch 128, 12x12x1, widths x 1/8; {steps} steps x {rounds} rounds (median)")
        for name in NDS:
            res = out["nds"][name] = bench_nds(name, device, steps, rounds, warmup)
            print(f"  {name:<13} vanilla {res['vanilla_ms']:.0f} ms/step   " +
                  "   ".join(f"{k}: {r:.2f}x" for k, r in res["ratios"].items()))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
        return
    space = get(a.space)
    dev_name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    print(f"CLOSENet step time / vanilla step time   device={device} ({dev_name})  torch={torch.__version__}  "
          f"threads={torch.get_num_threads()}  batch={BATCH}")
    out = {"space": a.space, "device": device, "device_name": dev_name, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "scales": {}}
    for scale in scales:
        d = QUICK if a.quick else DEFAULTS[("cuda" if device.startswith("cuda") else "cpu", scale)]
        steps, rounds, warmup = (v if v is not None else dv for v, dv in zip((a.steps, a.rounds, a.warmup), d))
        size, cin, C, N = SPACE_SCALES[a.space][scale]
        name = scale if a.space == "nb201" else f"{a.space} {scale}"
        print(f"\n[{name}] input {size}x{size}x{cin}, C={C}, N={N}, {CLASSES} classes; "
              f"{steps} steps x {rounds} rounds (median), {warmup} warm-up")
        t0 = time.perf_counter()
        res = bench_scale(space, scale, device, steps, rounds, warmup)
        res["wall_s"] = time.perf_counter() - t0
        out["scales"][scale] = res
        print(f"  vanilla: {res['vanilla_ms']:.1f} ms/step   (scale wall time {res['wall_s']:.0f} s)")
        print("  " + f"{'gate_forward':<16}" + "".join(f"{'L=%d' % L:>8}" for L in range(1, 6)))
        for m in MODES:
            print("  " + f"{m:<16}" + "".join(f"{r:>7.2f}x" for r in res["ratios"][m]))
        r5 = res["ratios"]["others_no_grad"][4]
        print(f"  L=1: GATE skipped, one code path for all modes (measured once).  "
              f"target others_no_grad@L=5 <= 2.5x: {r5:.2f}x {'PASS' if r5 <= 2.5 else 'MISS'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"\nwrote {a.json}")


if __name__ == "__main__":
    main()
