# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # GATE explorer: how a trained CLOSENet shares its weights
#
# In CLOSE (Zhou et al., ECCV 2022, §3.3-3.4) every cell holds a bank of GLOW blocks and a GATE routes each slot
# (NB201: edge) of an architecture to one of the active blocks; the curriculum adds blocks as training goes on, so
# the sharing extent shrinks. This notebook opens one run and shows that routing: for an architecture, the GATE's
# probability of each block per slot (the chance that training's Gumbel-max sample picks it) and the block scoring
# uses; over a set of architectures, the block usage per slot position, the routing entropy, whether the routing
# depends on the architecture at all, which blocks serve how many architectures, and how routing changes from one
# checkpoint (curriculum level) to the next. It knows the search space only through its protocol
# (`closekit/spaces/base.py`): slots, drawing and notable architectures come from the space.
#
# `run_dir` is a run directory of any space's notebook or `closekit train` (its `out_dir`) or a `closekit batch` job
# directory; a run leaves a snapshot at the last epoch of every curriculum level there. With `run_dir = None` the
# notebook first trains a tiny CLOSENet (embedded data, 3 GLOW blocks) so it always has something to show.

# %% tags=["parameters"]
run_dir: "Optional[str]" = None  # a run dir of any space or a closekit batch job dir (None: train a tiny CLOSENet)
archs: str = "sample:300"  # architectures of the usage / entropy / sharing views: all | valid | sample:N | truth | file
arch_seed: int = 0  # seed of sample:N
truth: "Optional[str]" = None  # ground truth for the best / worst notable archs (None: the run's own, if it exists)
demo_epochs: int = 9  # run_dir None: epochs of the tiny run; its 3 GLOW blocks start at 1, 1 + E/3, 1 + 2E/3
demo_train_limit: int = 3000  # run_dir None: training images of the tiny run
demo_dir: str = "runs/gate-explorer-demo"  # run_dir None: where the tiny run goes (resumed when present)

# %% [markdown]
# The run: its checkpoints (snapshots at the end of each curriculum level, `checkpoint.pt`) and configuration.

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Image, display

import closekit
from closekit import checkpoint, plots, routing
from closekit.train import snapshots
from closekit.widgets import arch_dependence_note, explorer, png

if run_dir is None:  # the tiny demo run: smoke-sized CLOSENet, a snapshot every epoch
    schedule = [1 + i * demo_epochs // 3 for i in range(3)]
    demo = closekit.RunConfig(train_limit=demo_train_limit, channels_init=4, cells_per_stage=1, num_blocks=3,
                              cl_schedule=schedule, gates_gcn_dims=[32, 32], mlp_hidden=[32], epochs=demo_epochs,
                              batch_size=128, srt_epochs=[schedule[2]], save_every=demo_epochs, archs="sample:20",
                              out_dir=demo_dir)
    _, d_data, d_net = closekit.build(demo)
    closekit.train(d_net, d_data, demo, out_dir=demo.out_dir, on_epoch_end=snapshots(every=1))
    run_dir = demo.out_dir
ckpts = routing.checkpoints(run_dir)
cfg = closekit.RunConfig.from_dict(checkpoint.read_checkpoint(ckpts["path"].iloc[-1])["config"])
space = closekit.spaces.get(cfg.space)
known = cfg.truth and (cfg.truth in closekit.groundtruth.SHIPPED or Path(cfg.truth.split("?")[0]).exists())
truth = truth or (cfg.truth if known else None)
truth_df = closekit.groundtruth.load(truth, space) if truth else None
arch_set = closekit.arch_list(space, archs, arch_seed, truth_df)
label, stochastic = routing.describe(checkpoint.load_net(ckpts["path"].iloc[-1])[0])
print(f"{run_dir}: {cfg.supernet} supernet, {label}, {len(ckpts)} checkpoints, {len(arch_set)} archs")
ckpts

# %% [markdown]
# ## The explorer
# Pick an architecture (notable ones, one op per slot, or type an arch string), a checkpoint (epoch slider) or a
# curriculum level (its last checkpoint), and, where a GATE (or the random router) routes, the usage view: the
# blocks scoring picks (`eval_routing`) or the expected counts under training's Gumbel sampling. Where routing is a
# fixed table (NDS's split table, vanilla) the explorer shows that table instead: each run of positions and its
# block. The architecture is routed and drawn exactly as chosen (as scoring does), with a note naming its
# isomorphism class's representative when that differs. NB201: edges are coloured by GLOW block; dashed edges are
# `none`, faded ones are dead (not on an input-output path). Needs a live kernel; the static views below carry the
# same.

# %%
ex = explorer(run_dir, archs=arch_set, truth=truth_df)
ex

# %% [markdown]
# ## Static views
# Routing of the architecture set at every checkpoint: blocks chosen at least once, distinct blocks per
# architecture and the share of (arch, slot) assignments whose block changed since the previous checkpoint; where
# the routing is learned or sampled also the mean routing entropy (nats, and as a share of log L) and
# `arch_dependence` (how much the GATE's probabilities vary across architectures relative to across blocks: near
# 0, every architecture is routed alike and the GATE is a fixed, arch-blind assignment).

# %%
routes, summary = routing.over_checkpoints(ckpts, space, arch_set)
note = arch_dependence_note(stochastic, summary.iloc[-1])
print(f"epoch {summary['epoch'].iloc[-1]}: {note or label}")
summary.drop(columns=[] if stochastic else ["entropy", "entropy_norm", "arch_dependence"]).round(4)

# %% [markdown]
# At the last checkpoint of each curriculum level: a GATE's block usage (how many architectures route each slot
# position to each block, the blocks scoring uses; then the expected counts under training's Gumbel sampling, how
# the blocks share the training steps), or a fixed router's table (each run of positions and its block).

# %%
last_of_level = ckpts.groupby("level")["epoch"].max().tolist()
if stochastic:
    for expected in (False, True):
        fig = plots.block_usage(pd.concat([routing.usage_table(routes[e], expected=expected) for e in last_of_level]))
        display(fig)
        plt.close(fig)
else:
    runs = pd.concat([routing.block_runs(routing.arch_table(routes[e], space)).assign(level=routes[e].level)
                      for e in last_of_level])
    runs["run"] = runs["from"] + "-" + runs["to"] + ": B" + runs["block"].astype(str)
    with pd.option_context("display.max_colwidth", None, "display.max_rows", None):
        display(runs.groupby(["level", "cell"])["run"].agg(", ".join).to_frame("positions: block"))

# %% [markdown]
# Notable architectures at the last checkpoint (`space.draw`): each slot coloured by its block, with the GATE's
# probability.

# %%
net, _, last_epoch = checkpoint.load_net(ckpts["path"].iloc[-1])
notable = routing.notable_archs(routes[last_epoch], space, truth_df, stochastic)
for name, arch in notable.items():  # one per row: legible at the report's width
    one = routing.route_cfg(net, space, [arch], cfg)
    display(Image(png(space.draw(arch, routing.arch_table(one, space), title=f"{name}\n{arch}"))))

# %% [markdown]
# Routing entropy per checkpoint: per slot position (thin) and mean (black); dashed lines at level changes (a
# fixed table has none).

# %%
if stochastic:
    by_position = pd.concat([routing.entropy_table(r).assign(epoch=e) for e, r in routes.items()])
    fig = plots.routing_entropy(summary, by_position)
    display(fig)
    plt.close(fig)
else:
    print(f"{label}: no routing entropy")

# %% [markdown]
# Block transitions between the last checkpoints of consecutive levels: (arch, slot) pairs per (old, new) block.

# %%
pairs = list(zip(last_of_level[:-1], last_of_level[1:]))
if pairs:
    fig = plots.transitions([(f"epoch {a} → {b}", routing.routing_change(routes[a], routes[b])["transition"])
                             for a, b in pairs])
    display(fig)
    plt.close(fig)
else:
    print("one curriculum level only: no transitions")

# %% [markdown]
# Sharing extent at the last checkpoint: per block, the (arch, slot) pairs routed to it and the architectures it
# serves; `param_*` count live parameterised slots only (NB201: live conv edges), the ones that use and train the
# block's weights (skip, pooling and `none` compute the same in every block).

# %%
routing.sharing_extent(routes[last_epoch])
