"""Retrain stand-alone rows of a mini ground truth (CLOSE §4 ranking's truth) and compare with the stored accuracy.

A run is bitwise reproducible on the machine that trained it; on another CPU the kernels round differently, and after
a few epochs that acts like another seed. This prints, for the N cheapest rows among results.csv rows [FIRST, LAST),
the stored and the retrained accuracy, and which machine meta.yaml says trained the row (``unrecorded`` before the
record began) against this one.

    PYTHONPATH=. python bench/retrain_rows.py closekit/assets/mini_nds_resnet -n 3
    PYTHONPATH=. python bench/retrain_rows.py bench/recipes/nds/x1-12px-c4-e4-6k --rows 0:33 -n 2
"""
import argparse
from pathlib import Path

import torch
import yaml

from closekit.groundtruth.machine import built_on, machine
from closekit.groundtruth.recipe import Recipe
from closekit.groundtruth.results import read_results
from closekit.groundtruth.standalone import load_data, train_one

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("dir", help="a minibench directory (meta.yaml + results.csv)")
p.add_argument("--rows", default=":", help="FIRST:LAST, results.csv rows (0-based, header excluded) to pick from")
p.add_argument("-n", type=int, default=2, help="how many of them, cheapest first")
args = p.parse_args()
meta = yaml.safe_load(Path(args.dir, "meta.yaml").read_text())
recipe, results = Recipe.from_dict(meta["recipe"]), read_results(f"{args.dir}/results.csv")
first, _, last = args.rows.partition(":")
pick = results.iloc[int(first or 0):int(last) if last else None].sort_values("params").head(args.n)
torch.set_num_threads(recipe.threads)
data, here = load_data(recipe), machine(recipe.device)
print(f"this machine: {here}")
for i, r in pick.iterrows():
    got = train_one(r["arch"], int(r["seed"]), recipe, data)
    by = built_on(meta, i)
    same = "this machine" if by == here else (by or "unrecorded")
    print(f"row {i} {r['arch'][:60]} seed {r['seed']}: stored {r['acc']:.4f}, now {got['acc']:.4f} "
          f"(diff {got['acc'] - r['acc']:+.4f}); trained on {same}", flush=True)
