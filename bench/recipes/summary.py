"""Recipe studies of the mini ground truths: reliability and cost of each recipe, side by side (CLOSE §4.1's
ground truth, scaled down; issues 11, 12).

    python bench/recipes/summary.py bench/recipes/nb301/n*/      # NB301 recipes
    python bench/recipes/summary.py bench/recipes/nds/n*/        # NDS ResNet recipes
    python bench/recipes/summary.py --study 40 bench/recipes/r[012]*/ closekit/assets/mini_nb201   # the NB201 study
                                  # (recipe r3 shipped as mini-nb201: sample:300 starts with the 40 study archs)

Each directory is one recipe (`closekit truth build` output of run_study.sh); rows use the architectures finished
with seeds 0 and 1 (a study may still be running); ``--study N``: only the first N of the recipe's sample (its
space and sample seed from meta.yaml). Columns: the seed-0 vs seed-1 Kendall tau (the noise ceiling,
± its bootstrap std over architectures); the architecture and per-run noise sd from the variance split
(ceiling.seed_mean_reliability); rho1, the reliability of one run; the Kendall tau a k-seed mean is predicted to
reach against the noise-free ranking (normal model, 2/pi asin(sqrt(rho_k))) for k = 2 and for the k that the
slowest recipe's 2 seeds would pay for (equal cost: the fair comparison); and how well the parameter count alone
ranks (a recipe whose ranking is mostly size measures little else).
"""
import argparse
import math
import sys
from pathlib import Path

import yaml
from scipy.stats import kendalltau

from closekit.groundtruth.ceiling import noise_ceiling, seed_mean_reliability
from closekit.groundtruth.results import read_results


def tau_k(arch_var, noise_var, k):
    """Predicted Kendall tau of a k-seed mean against the noise-free ranking."""
    rho = arch_var / (arch_var + noise_var / k) if arch_var + noise_var > 0 else float("nan")
    return 2 / math.pi * math.asin(math.sqrt(rho))


def measure(d, study=None):
    """The figures of one recipe directory (None when it has < 3 architectures with both seeds)."""
    results = read_results(Path(d) / "results.csv")
    if study:
        from closekit.spaces import get
        meta = yaml.safe_load((Path(d) / "meta.yaml").read_text())
        space = get(meta.get("space", "nb201"))                    # older NB201 study dirs name no space or seed
        study = {space.to_str(a) for a in space.sample_list(study, meta.get("sample_seed", 0))}
        results = results[results["arch"].isin(study)]
    wide = results.pivot(index="arch", columns="seed", values="acc").reindex(columns=[0, 1]).dropna()
    if len(wide) < 3:
        return None
    res = results[results["arch"].isin(wide.index)]
    nc, rel = noise_ceiling(res), seed_mean_reliability(wide)
    params = res.groupby("arch")["params"].first().reindex(wide.index)
    return {"recipe": Path(d).name, "archs": len(wide), "s_job": float(results["seconds"].median()),
            "acc_lo": 100 * wide.mean(axis=1).min(), "acc_hi": 100 * wide.mean(axis=1).max(),
            "arch_sd": 100 * rel["arch_sd"], "noise_sd": 100 * rel["noise_sd"],
            "ceiling": nc["kendall"], "ceiling_sd": nc["bootstrap_std"],
            "rho1": rel["arch_sd"] ** 2 / (rel["arch_sd"] ** 2 + rel["noise_sd"] ** 2),
            "tau2": tau_k(rel["arch_sd"] ** 2, rel["noise_sd"] ** 2, 2),
            "params_tau": float(kendalltau(params, wide.mean(axis=1)).statistic),
            "var": (rel["arch_sd"] ** 2, rel["noise_sd"] ** 2)}


def table(rows):
    """Markdown, one line per recipe."""
    slowest = max(r["s_job"] for r in rows)
    head = ["recipe", "archs x 2 seeds", "s/job (median)", "acc range %", "arch sd (pt)", "seed noise sd (pt)",
            "noise ceiling (tau seed 0 vs 1)", "rho1", "tau vs noise-free, 2 seeds", "at equal cost (k seeds)",
            "params-only tau"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in rows:
        k = max(2, int(2 * slowest / r["s_job"]))
        lines.append(f"| {r['recipe']} | {r['archs']} | {r['s_job']:.0f} | {r['acc_lo']:.1f}-{r['acc_hi']:.1f} | "
                     f"{r['arch_sd']:.2f} | {r['noise_sd']:.2f} | {r['ceiling']:.3f} ± {r['ceiling_sd']:.3f} | "
                     f"{r['rho1']:.2f} | {r['tau2']:.3f} | {tau_k(*r['var'], k):.3f} ({k}) | "
                     f"{r['params_tau']:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", help="recipe directories (closekit truth build output)")
    p.add_argument("--study", type=int, help="only the first N architectures of each recipe's sample")
    args = p.parse_args(argv)
    dirs = [d for d in args.dirs if (Path(d) / "results.csv").is_file()]
    rows = [r for r in (measure(d, args.study) for d in dirs) if r]
    if not rows:
        print("no recipe directory with >= 3 architectures done: give bench/recipes/<space>/n*/ (see run_study.sh)")
        return 1
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
