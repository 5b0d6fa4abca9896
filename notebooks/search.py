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
# # Search on one-shot scores: regularized evolution vs random search
#
# CLOSE's supernet is meant to be *used*: a search strategy queries its one-shot scores and keeps the best. This
# notebook loads a trained run (`run_dir`: a directory written by `closekit train` or by `nb201.ipynb`), runs
# random search and regularized evolution (Real et al. 2019; population 20, tournament 5, one decision mutated,
# the oldest dropped) with the same budget (the number of architectures scored; no architecture is scored twice),
# and, when the run has a ground truth, says how good the chosen architectures truly are, next to the best of
# K = budget random picks. The same from the shell: `closekit search RUN_DIR --strategy evolution --budget 500`.

# %% tags=["parameters"]
run_dir: str = "runs/nb201-mini-close"  # a trained run (config.yaml + checkpoint.pt)
strategy: str = "evolution"  # evolution | random: the strategy reported first (both are drawn)
budget: int = 100  # architectures scored per search
seed: int = 0  # search seed

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

import closekit
from closekit import search

ctx = search.run_context(run_dir)
truth = ctx[2]
runs = {s: search.search_run(run_dir, s, budget, seed, ctx=ctx)
        for s in [strategy] + [s for s in search.STRATEGIES if s != strategy]}
res, report = runs[strategy]

# %% [markdown]
# ## Result
# The chosen architecture (best one-shot score) of each strategy; with a ground truth, its true accuracy, its true
# rank as a percentile (0: the truth's best; 100 × archs truly better / N) and its regret against the truth's best.
# "random picks" rows are exact expectations over K = budget uniform picks of the truth's architectures, chosen by
# one-shot score (what random search gets on average) or by true accuracy (training K random archs stand-alone).

# %%
if truth is not None:
    display(Markdown(f"**{strategy}**, budget {report['n_scored']}, seed {seed}: true acc "
                     f"{report['chosen_true_acc']:.4f}, top {report['chosen_rank_pct']:.1f}% of {report['n_truth']}, "
                     f"regret {report['chosen_regret']:.4f} (random picks by one-shot score: top "
                     f"{report['random_oneshot_rank_pct']:.1f}%, regret {report['random_oneshot_regret']:.4f})"))
    rows = {s: {"true acc": r["chosen_true_acc"], "rank %": r["chosen_rank_pct"], "regret": r["chosen_regret"]}
            for s, (_, r) in runs.items()}
    rows["random picks, by one-shot score (expected)"] = {"true acc": report["random_oneshot_acc"],
                                                          "rank %": report["random_oneshot_rank_pct"],
                                                          "regret": report["random_oneshot_regret"]}
    rows["random picks, by true acc (expected)"] = {"true acc": report["random_truebest_acc"],
                                                    "rank %": report["random_truebest_rank_pct"],
                                                    "regret": report["random_truebest_regret"]}
    display(pd.DataFrame(rows).T.round(4))
else:
    display(Markdown(f"No ground truth in the run: **{strategy}** chose `{res.chosen}` "
                     f"(one-shot score {report['chosen_score']:.4f}) after {len(res.history)} architectures."))

# %% [markdown]
# Best so far against the number of architectures scored, both strategies: the best one-shot score, and (with a
# ground truth) the true accuracy of the architecture the search would choose at that point, with the truth's best
# as a line.

# %%
fig, axes = plt.subplots(1, 2 if truth is not None else 1, figsize=(11 if truth is not None else 5.5, 3.8),
                         squeeze=False)
acc = truth.set_index("arch")["acc"] if truth is not None else None
for s, (r, _) in runs.items():
    curve = search.best_so_far(r.history)
    axes[0, 0].plot(curve["n_scored"], curve["best_score"], label=s)
    if truth is not None:
        axes[0, 1].plot(curve["n_scored"], curve["arch"].map(acc), label=s)
axes[0, 0].set(xlabel="architectures scored", ylabel="best one-shot score so far", title="one-shot score")
if truth is not None:
    axes[0, 1].axhline(acc.max(), color="k", ls="--", label="truth's best")
    axes[0, 1].set(xlabel="architectures scored", ylabel="true acc of the chosen arch", title="ground truth")
for ax in axes[0]:
    ax.legend()
fig.tight_layout()
display(fig)
plt.close(fig)

# %% [markdown]
# Recorded in this notebook for `closekit.read_results`: each strategy's report and history.

# %%
recorded = closekit.record(None, search={s: r for s, (_, r) in runs.items()},
                           history={s: res_.history for s, (res_, _) in runs.items()}, **report)
