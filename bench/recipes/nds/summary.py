"""The NDS recipe study's table so far: noise ceiling, spread, cost, and how well params alone rank, per recipe.

    PYTHONPATH=. python bench/recipes/nds/summary.py

Each bench/recipes/nds/n*/ directory is one recipe (bench/recipes/nds/run_study.sh); rows use the configurations
finished with both seeds.
"""
from pathlib import Path

import pandas as pd

from closekit.groundtruth.minibench import noise_ceiling, read_results, truth_table
from closekit.groundtruth.nds import size_baseline
from closekit.spaces import get

HERE = Path(__file__).resolve().parent


def row(name, results):
    wide = results.pivot(index="arch", columns="seed", values="acc")[[0, 1]].dropna()
    res = results[results["arch"].isin(wide.index)]
    nc = noise_ceiling(res) if len(wide) > 2 else None
    truth = truth_table(res)
    return {"recipe": name, "archs": len(wide), "s/job (median)": res["seconds"].median(),
            "acc range %": f"{100 * wide.mean(axis=1).min():.1f}-{100 * wide.mean(axis=1).max():.1f}",
            "arch sd (pt)": round(100 * wide.mean(axis=1).std(), 2),
            "seed noise sd (pt)": round(100 * (wide[0] - wide[1]).std() / 2 ** .5, 2),
            "noise ceiling": f"{nc['kendall']:.3f} ± {nc['bootstrap_std']:.3f}" if nc else "",
            "params-only kendall": round(size_baseline(truth, get("nds-resnet"))["kendall"], 3) if len(wide) > 2
            else ""}


if __name__ == "__main__":
    rows = [row(d.name, read_results(d / "results.csv")) for d in sorted(HERE.glob("n*")) if d.is_dir()]
    print(pd.DataFrame(rows).to_string(index=False))
