"""What a mini regime costs on one core (issue 29 item 3): minutes per run of each candidate, side by side.

Each regime is a (space, variant) of ``bench/mini_regime.py`` (the study's fixed baseline for the space plus the
variant's ``KEY=VALUE`` overrides), built as the study builds it, on one torch thread. R rounds each time one
training epoch of every regime in turn (interleaved, so drift in the machine's load hits all of them alike; the
median over rounds is reported), and scoring the space's shipped mini truth is timed once per space. A run costs
``epochs x epoch seconds + scoring seconds``; each regime is shown next to its space's baseline as a ratio.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/regime_cost.py                   # the default regimes, 3 rounds
    PYTHONPATH=. python bench/regime_cost.py --regimes "nds-resnexta:batch_size=32 epochs=40" --rounds 2

On a shared machine run it at a higher priority than the background work (``nice``) so it has a core to itself.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mini_regime import BASELINE, config  # noqa: E402

# the baselines and the regimes the study singled out (ResNeXt-A's winner at 60 and 40 epochs, NB301's best lever)
REGIMES = ("nds-resnexta:baseline", "nds-resnexta:batch_size=32 epochs=60", "nds-resnexta:batch_size=32 epochs=40",
           "nds-resnet:baseline", "nb301:baseline", "nb301:batch_size=32")


def parse(regime):
    """``space:variant`` -> (space, variant); the variant is checked by building its config."""
    space, _, variant = regime.partition(":")
    config(space, variant or BASELINE, 0)
    return space, variant or BASELINE


def setup(space, variant):
    """A regime's config and trainer, built as the study's run builds it (seed 0)."""
    from closekit import Trainer, build
    cfg = config(space, variant, 0)
    sp, data, net = build(cfg)
    return cfg, sp, data, net, Trainer(net, data, cfg, space=sp, log=lambda *_: None)


def time_epoch(trainer, epoch):
    """Wall seconds of one training epoch (its curriculum / scheduler step included)."""
    t0 = time.perf_counter()
    trainer.epoch_start(epoch)
    trainer.history.append(trainer.run_epoch(epoch))
    return time.perf_counter() - t0


def time_scoring(cfg, sp, data, net):
    """Wall seconds of scoring every architecture of the space's shipped mini truth."""
    from closekit import groundtruth
    from closekit.evaluate import arch_list, evaluate
    archs = arch_list(sp, cfg.archs, cfg.arch_seed, groundtruth.load(cfg.truth, sp, for_dataset=cfg.dataset))
    t0 = time.perf_counter()
    evaluate(net, sp, archs, data, cfg)
    return time.perf_counter() - t0, len(archs)


def measure(regimes, rounds):
    """{regime: row} with the median epoch seconds over ``rounds`` interleaved rounds and the run's cost."""
    import torch
    torch.set_num_threads(1)
    built = {r: setup(*r) for r in regimes}
    epochs = {r: [] for r in regimes}
    for i in range(rounds):
        for r, (_, _, _, _, trainer) in built.items():
            epochs[r].append(time_epoch(trainer, i + 1))
    scoring = {}
    for r, (cfg, sp, data, net, _) in built.items():
        if r[0] not in scoring:
            scoring[r[0]] = time_scoring(cfg, sp, data, net)
    rows = {}
    for r, (cfg, *_) in built.items():
        epoch_s, (score_s, n) = statistics.median(epochs[r]), scoring[r[0]]
        rows[r] = {"space": r[0], "variant": r[1], "epochs": cfg.epochs, "batch_size": cfg.batch_size,
                   "epoch_s": round(epoch_s, 2), "score_s": round(score_s, 1), "n_archs": n,
                   "run_min": round((cfg.epochs * epoch_s + score_s) / 60, 1), "rounds": epochs[r]}
    for row in rows.values():
        base = rows.get((row["space"], BASELINE))
        row["x_baseline"] = round(row["run_min"] / base["run_min"], 2) if base else None
    return list(rows.values())


def table(rows):
    """Markdown: one line per regime, the run's minutes and its ratio to the space's baseline."""
    head = "| space | regime | epochs x batch | s / epoch (median) | scoring s (archs) | min / run | x baseline |"
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        ratio = "" if r["x_baseline"] is None else f"{r['x_baseline']:.2f}"
        lines.append(f"| {r['space']} | {r['variant']} | {r['epochs']} x {r['batch_size']} | {r['epoch_s']:.1f} | "
                     f"{r['score_s']:.0f} ({r['n_archs']}) | {r['run_min']:.1f} | {ratio} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regimes", nargs="+", default=list(REGIMES), metavar="SPACE:VARIANT",
                   help="regimes to time (variant: mini_regime's KEY=VALUE overrides, or baseline)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of one epoch per regime")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    regimes = [parse(r) for r in args.regimes]              # every config resolves before any timing
    rows = measure(regimes, args.rounds)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
