"""The mini NB301 recipe study's table: noise ceiling, spread and cost of each recipe on the 40 study genotypes.

    python bench/recipes/nb301/summary.py

Each bench/recipes/nb301/n*/ directory is one recipe (`closekit truth build` output; see run_study.sh). Rows use the
study genotypes finished with both seeds so far (the study may still be running).
"""
from pathlib import Path

from closekit.groundtruth.minibench import noise_ceiling, read_results

HERE = Path(__file__).resolve().parent


def row(name, results):
    """One recipe's figures over the genotypes it finished with seeds 0 and 1."""
    wide = results.pivot(index="arch", columns="seed", values="acc").reindex(columns=[0, 1]).dropna()
    res = results[results["arch"].isin(wide.index)]
    nc = noise_ceiling(res) if len(wide) > 2 else None
    return {"recipe": name, "archs x 2 seeds": len(wide), "jobs done": len(results),
            "s/job (median)": f"{results['seconds'].median():.0f}" if len(results) else "",
            "acc range %": f"{100 * wide.mean(axis=1).min():.1f}-{100 * wide.mean(axis=1).max():.1f}" if len(wide)
            else "", "arch sd (pt)": f"{100 * wide.mean(axis=1).std():.2f}" if len(wide) > 1 else "",
            "seed noise sd (pt)": f"{100 * (wide[0] - wide[1]).std() / 2 ** .5:.2f}" if len(wide) > 1 else "",
            "noise ceiling": f"{nc['kendall']:.3f} ± {nc['bootstrap_std']:.3f}" if nc else ""}


def main():
    rows = [row(d.name, read_results(d / "results.csv")) for d in sorted(HERE.glob("n*/"))
            if (d / "results.csv").is_file()]
    if not rows:
        print("no recipe directory yet: run bench/recipes/nb301/run_study.sh")
        return
    print("| " + " | ".join(rows[0]) + " |")
    print("|---" * len(rows[0]) + "|")
    for r in rows:
        print("| " + " | ".join(str(v) for v in r.values()) + " |")


if __name__ == "__main__":
    main()
