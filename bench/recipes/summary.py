"""The recipe study's table: noise ceiling, spread and cost of each recipe on the 40 study architectures.

    python bench/recipes/summary.py

Each bench/recipes/r*/ directory is one recipe; the shipped ground truth (closekit/assets/mini_nb201, recipe r3)
contains the 40 study architectures (sample:300 starts with sample:40), so it completes r3's row.
"""
from pathlib import Path

from closekit.groundtruth import SHIPPED
from closekit.groundtruth.minibench import noise_ceiling, read_results
from closekit.spaces import get

HERE = Path(__file__).resolve().parent
SHIPPED_AS = "r3-12px-c8n2-e8-3k"


def row(name, results, study):
    """One recipe's figures over the study archs it finished with both seeds."""
    res = results[results["arch"].isin(study)]
    wide = res.pivot(index="arch", columns="seed", values="acc")[[0, 1]].dropna()
    res = res[res["arch"].isin(wide.index)]
    nc = noise_ceiling(res)
    return {"recipe": name, "archs": len(wide), "s/job (median)": res["seconds"].median(),
            "acc range %": f"{100 * wide.mean(axis=1).min():.1f}-{100 * wide.mean(axis=1).max():.1f}",
            "arch sd (pt)": 100 * wide.mean(axis=1).std(),
            "seed noise sd (pt)": 100 * (wide[0] - wide[1]).std() / 2 ** .5,
            "noise ceiling": f"{nc['kendall']:.3f} ± {nc['bootstrap_std']:.3f}"}


def main():
    space = get("nb201")
    study = {space.to_str(a) for a in space.sample_list(40, 0)}
    rows = []
    for d in sorted(HERE.glob("r*/")):
        res = read_results(d / "results.csv")
        if d.name == SHIPPED_AS:
            res = read_results(SHIPPED["mini-nb201"] / "results.csv")
        rows.append(row(d.name, res, study))
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()] for r in rows]
    print("| " + " | ".join(rows[0]) + " |\n" + "|---" * len(rows[0]) + "|")
    print("\n".join("| " + " | ".join(c) + " |" for c in cells))


if __name__ == "__main__":
    main()
