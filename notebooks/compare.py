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
# # Compare the runs of a batch
# The configurations side by side, headline first (ranking quality per configuration, mean ± std over the runs that
# differ only in `seed`, next to the ground truth's ceilings), then figures, then every recorded metric and run. A
# configuration is the supernet plus every config key that differs between the runs but `seed` and `out_dir`.

# %% tags=["parameters"]
batch_dir: str = "runs/batch"  # a `closekit batch --out` directory (or any directory of executed run notebooks)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

import closekit
from closekit import plots
from closekit.metrics import HEADLINE

CEILINGS = {"truth_best_kendall": ("best reachable τ", "-"),   # ground-truth ceilings recorded per run: name, line
            "truth_seed_kendall": ("seed-to-seed τ", "--")}

results = closekit.read_results(batch_dir)
if "config" not in results or results["config"].isna().all():
    raise ValueError(f"no recorded run results under {batch_dir!r}; run closekit batch notebooks/<space>.ipynb first")
runs = results[results["config"].notna()].copy()
notebooks = sorted({p.name for r in runs["run"] for p in
                    ([Path(r)] if r.endswith(".ipynb") else Path(r).glob("*.ipynb")) if p.suffix == ".ipynb"})
spaces = sorted({c["space"] for c in runs["config"]})
configs = pd.DataFrame(list(runs["config"]), index=runs.index).drop(columns=["seed", "out_dir"], errors="ignore")
varying = [k for k in configs if k != "supernet" and configs[k].map(str).nunique() > 1]
runs["config_name"] = [" ".join([c["supernet"], *(f"{k}={c[k]}" for k in varying)]) for _, c in configs.iterrows()]
metric_cols = [m for m in (*HEADLINE, *CEILINGS, "br@5%", "oneshot_acc_mean", "oneshot_acc_std",
                           "final_train_loss", "train_seconds", "score_seconds") if m in runs]
runs[metric_cols] = runs[metric_cols].apply(pd.to_numeric, errors="coerce")
grouped = runs.groupby("config_name")[metric_cols]
table = grouped.mean().add_suffix("_mean").join(grouped.std().add_suffix("_std"))
table.insert(0, "runs", runs.groupby("config_name").size())
table.insert(1, "seeds", runs.groupby("config_name")["config"].agg(lambda cs: sorted(c["seed"] for c in cs)))


def mean_std(cols, spec=".4g"):
    """``table``'s columns as 'mean ± std' text ('–' without a value, the mean alone for one run)."""
    return pd.DataFrame({m: ["–" if pd.isna(a) else f"{a:{spec}}" if pd.isna(s) else f"{a:{spec}} ± {s:.2g}"
                             for a, s in zip(table[f"{m}_mean"], table[f"{m}_std"])] for m in cols}, index=table.index)


def plural(k, word):
    """'1 run', '2 runs'."""
    return f"{k} {word}{'' if k == 1 else 's'}"


# %% [markdown]
# ## Headline

# %%
ceilings = {k: float(runs[k].iloc[0]) for k in CEILINGS     # shown once when every run recorded the same value
            if k in runs and runs[k].notna().all() and runs[k].nunique() == 1}
ranked = [m for m in HEADLINE if m in runs and runs[m].notna().any()]
differ = [k for k in CEILINGS if k in runs and runs[k].notna().any() and k not in ceilings]   # else as columns
head = table[["runs"]].join(mean_std((ranked or ["oneshot_acc_mean"]) + differ, ".3g"))
truths = ", ".join(f"`{t}`" for t in runs["truth"].dropna().unique()) if "truth" in runs else ""
note = ", ".join(f"{CEILINGS[k][0]} = {v:.3f}" for k, v in ceilings.items())
display(Markdown(f"Runs of {', '.join(f'`{nb}`' for nb in notebooks) or 'run notebooks'} on "
                 f"{', '.join(spaces)}: **{plural(len(table), 'configuration')}**, {plural(len(runs), 'run')} "
                 f"with recorded results ({len(results)} in `{batch_dir}`), ranked against "
                 f"{truths or 'no ground truth'}"
                 + (f"; ground-truth ceilings: {note}" if note else "")))
head

# %% [markdown]
# Ranking quality per configuration: Kendall τ and P@top5% of the one-shot scores (bars: mean ± std, points: runs;
# red lines on the Kendall panel: the ground truth's best reachable τ, and dashed its seed-to-seed τ).

# %%
ranking_cols = [m for m in ("kendall", "p@top5%") if m in ranked]
if ranking_cols:
    lines = {"kendall": [(v, f"truth: {CEILINGS[k][0]}", CEILINGS[k][1]) for k, v in ceilings.items()]}
    fig = plots.by_config(runs, ranking_cols, config="config_name", lines=lines)
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

# %% [markdown]
# ## Details
# Every recorded metric per configuration (mean ± std over seeds), then every run found and its state.

# %%
display(table[["runs", "seeds"]].join(mean_std(metric_cols)))
display(results[["run", "status"]])

# %%
recorded = closekit.record(None, compare_table=table.reset_index(), truth_ceilings=ceilings)   # kept in this notebook
