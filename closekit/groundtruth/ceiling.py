"""The noise ceiling of a mini ground truth (CLOSE §4 ranking): how well its seeds agree, and the best Kendall tau
any predictor can reach against its seed mean."""
import numpy as np
from scipy.stats import kendalltau

N_BOOT = 1000                            # bootstrap resamples of the seed-to-seed tau


def _tau(a, b):
    """Kendall tau of two accuracy vectors; NaN when either is constant or too short."""
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(kendalltau(a, b).statistic)


def seed_mean_reliability(wide):
    """Arch and noise sd of an arch x seed table, reliability rho of its mean and the taus it implies (2/pi asin)."""
    acc, k = wide.to_numpy(), wide.shape[1]
    noise = float(acc.var(axis=1, ddof=1).mean())                 # within-arch (seed) variance
    arch = max(float(acc.mean(axis=1).var(ddof=1)) - noise / k, 0.0)
    rho = arch / (arch + noise / k) if arch + noise > 0 else float("nan")
    tau = lambda r: float(2 / np.pi * np.arcsin(r))
    return {"n_seeds": k, "arch_sd": arch ** 0.5, "noise_sd": noise ** 0.5, "rho": rho,
            "tau_two_means": tau(rho), "tau_vs_noise_free": tau(rho ** 0.5)}


def noise_ceiling(results, n_boot=N_BOOT, boot_seed=0):
    """Seed-to-seed Kendall tau (first pair, bootstrapped; every pair; mean vs seed), reliability; None if < 2 seeds."""
    wide = results.pivot(index="arch", columns="seed", values="acc")
    seeds = sorted(wide.columns)
    if len(seeds) < 2:
        return None
    pair = wide[seeds[:2]].dropna().to_numpy()
    a, b = pair[:, 0], pair[:, 1]
    idx = np.random.default_rng(boot_seed).integers(0, len(pair), (n_boot, len(pair)))
    boots = np.array([_tau(a[i], b[i]) for i in idx]) if len(pair) > 2 else np.array([np.nan])
    ok = boots[~np.isnan(boots)]
    out = {"seeds": [int(s) for s in seeds[:2]], "n_archs": len(pair), "kendall": _tau(a, b),
           "bootstrap_mean": float(ok.mean()) if len(ok) else None,
           "bootstrap_std": float(ok.std()) if len(ok) else None, "bootstrap_n": n_boot}
    full = wide[seeds].dropna()
    if len(seeds) > 2:
        mean = full.mean(axis=1).to_numpy()
        out["pairs"] = {f"{s}-{t}": _tau(full[s].to_numpy(), full[t].to_numpy())
                        for i, s in enumerate(seeds) for t in seeds[i + 1:]}
        out["mean_vs_seed"] = {int(s): _tau(mean, full[s].to_numpy()) for s in seeds}
    if len(full) > 2:
        out["seed_mean"] = seed_mean_reliability(full)
    return out
