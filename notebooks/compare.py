# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Compare runs of `nb201.ipynb`
#
# Reads the results that `closekit batch notebooks/nb201.ipynb params/nb201/*.yaml --out DIR` recorded
# (`closekit.read_results`) and puts the configurations side by side: one table of metrics per configuration
# (mean ± std over the runs that differ only in `seed`), the ranking metrics per configuration, and the one-shot
# scores per configuration (against the ground truth when one was recorded).

# %% tags=["parameters"]
batch_dir: str = "runs/batch"  # a `closekit batch --out` directory (or any directory of executed nb201 notebooks)

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

import closekit
from closekit import plots

results = closekit.read_results(batch_dir)
if "config" not in results or results["config"].isna().all():
    raise ValueError(f"no recorded nb201 results under {batch_dir!r}; run closekit batch notebooks/nb201.ipynb first")
runs = results[results["config"].notna()].copy()
print(f"{len(results)} runs in {batch_dir}, {len(runs)} with recorded nb201 results")
results[["run", "status"]]

# %% [markdown]
# A configuration is the supernet plus every config key that differs between the runs, except `seed` and
# `out_dir`; runs of one configuration are seeds of it.

# %%
configs = pd.DataFrame(list(runs["config"]), index=runs.index).drop(columns=["seed", "out_dir"], errors="ignore")
varying = [k for k in configs if k != "supernet" and configs[k].map(str).nunique() > 1]
runs["config_name"] = [" ".join([c["supernet"], *(f"{k}={c[k]}" for k in varying)]) for _, c in configs.iterrows()]
metric_cols = [m for m in ("kendall", "spearman", "p@top5%", "br@5%", "oneshot_acc_mean", "oneshot_acc_std",
                           "final_train_loss", "train_seconds", "score_seconds") if m in runs]
runs[metric_cols] = runs[metric_cols].apply(pd.to_numeric, errors="coerce")
grouped = runs.groupby("config_name")[metric_cols]
table = grouped.mean().add_suffix("_mean").join(grouped.std().add_suffix("_std"))
table.insert(0, "runs", runs.groupby("config_name").size())
table.insert(1, "seeds", runs.groupby("config_name")["config"].agg(lambda cs: sorted(c["seed"] for c in cs)))
shown = table[["runs", "seeds"]].copy()
for m in metric_cols:
    shown[m] = ["–" if pd.isna(a) else f"{a:.4g}" if pd.isna(s) else f"{a:.4g} ± {s:.2g}"
                for a, s in zip(table[f"{m}_mean"], table[f"{m}_std"])]
shown

# %% [markdown]
# Ranking quality per configuration: Kendall τ and P@top5% of the one-shot scores (bars: mean ± std, points: runs).

# %%
ranking_cols = [m for m in ("kendall", "p@top5%") if m in runs and runs[m].notna().any()]
if ranking_cols:
    fig = plots.by_config(runs, ranking_cols, config="config_name")
    display(fig)
    plt.close(fig)
else:
    print("no run recorded ranking metrics (no ground truth configured)")

# %% [markdown]
# One-shot scores per configuration: against the ground-truth accuracy when the runs recorded it, else their
# distributions.

# %%
parts = [pd.DataFrame(s).assign(config_name=n, run=r)
         for s, n, r in zip(runs.get("scores", []), runs["config_name"], runs["run"]) if isinstance(s, list)]
if parts:
    scores = pd.concat(parts, ignore_index=True)
    fig = plots.scores_by_config(scores, config="config_name")
    display(fig)
    plt.close(fig)
else:
    print("no recorded scores")

# %%
recorded = closekit.record(compare_table=table.reset_index())
