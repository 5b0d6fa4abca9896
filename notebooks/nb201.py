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
# # CLOSE on NAS-Bench-201: train a supernet, score architectures, rank them
#
# **CLOSE** (Zhou et al., *Curriculum Learning On the Sharing Extent Towards Better One-shot NAS*, ECCV 2022)
# gives every cell a bank of GLOW blocks (full op-weight sets) and a GATE that routes each edge of the sampled
# architecture to one block; the bank grows during training (curriculum, WIT init) and the learning rate
# restarts once (SRT), so architectures share less as training goes on and their one-shot scores rank better.
#
# This notebook runs one configuration end to end: it trains the supernet (vanilla or CLOSENet), scores the
# configured architectures with the shared weights, ranks them against a ground truth when `truth` is set,
# plots the scores, the training trajectory and the GLOW-block usage per curriculum level, and records
# everything with `closekit.record` (for `compare.ipynb`). The defaults are `params/nb201/mini-close.yaml`;
# run many configurations with `closekit batch notebooks/nb201.ipynb params/nb201/*.yaml --out runs/batch`.

# %% tags=["parameters"]
# data
space: str = "nb201"  # search space (closekit.spaces registry)
dataset: str = "embedded"  # embedded | fashion-mnist | cifar10 | synthetic
data_dir: "Optional[str]" = None  # dataset files (None: the dataset's default place)
download: bool = False  # torchvision download for cifar10
image_size: "Optional[int]" = 12  # input resolution (None: native)
channels: "Optional[int]" = None  # input channels (None: native; 3 repeats a grey channel)
train_portion: float = 0.8  # first part of the training set trains the supernet, the rest scores (< 1)
train_limit: "Optional[int]" = None  # keep only the first n training images (None: all)
augment: bool = True  # random crop + flip on training batches
# supernet
supernet: str = "close"  # vanilla (one block per edge, fixed router) | close (GLOW bank + GATE)
channels_init: int = 8  # C: cell channels of the first stage (then 2C, 4C)
cells_per_stage: int = 2  # N: cells per stage
dropout: float = 0.1  # dropout before the classifier
# CLOSE sharing (ignored by vanilla)
num_blocks: int = 5  # GLOW blocks per cell
cl_schedule: list = [1, 7, 13, 19, 25]  # epoch at which each GLOW block becomes active (sorted, starts at 1)
router: str = "node"  # node (node-level GATE) | arch (arch-level GATE) | random (one-hot ablation)
gumbel_temperature: float = 5.0  # GATE Gumbel-softmax temperature
gates_op_dim: int = 48  # GATES op embedding size
gates_node_dim: int = 48  # GATES node embedding size
gates_hidden: int = 96  # GATES hidden size
gates_gcn_dims: list = [128, 128, 128, 128, 128]  # GATES graph-convolution layer sizes
mlp_hidden: list = [200, 200, 200]  # GATE MLP hidden sizes
mlp_dropout: float = 0.1  # GATE MLP dropout
mlp_growth: str = "inherit"  # inherit (new row gets the parent row added) | only_last | full (re-init)
mlp_parent: str = "prev"  # inherited MLP row: prev (previous block, reference) | wit (the WIT parent)
wit_from: str = "prev"  # WIT parent: prev (previous block) | random (a random earlier block)
cl_criteria: str = "pre"  # NDS split table: pre (shallowest long group, reference) | max (longest group)
wit_buffers: bool = True  # NDS WIT sums BN running stats too (reference) | false: parameters only
head_norm: str = "none"  # NDS: pooled features to the FC as they are (reference) | mean: centred first
gate_forward: "Optional[str]" = None  # all (reference) | others_no_grad (None: this; same updates, less work) | selected
aw_nas_compat: bool = False  # reproduce the reference's orphaned GATE params and level-1 GATE decay
keep_zero_grads: bool = False  # torch-1.x zero_grad as the reference ran: every param once used gets decay + momentum each step
gate_lr_scale: float = 1.0  # GATE learning rate: lr times this (reference: 1)
gate_weight_decay: "Optional[float]" = None  # GATE weight decay (None: weight_decay, as the reference)
gate_embed_norm: str = "none"  # GATE node embeddings before the MLP: none (reference) | layernorm | l2
gate_gcn_init: str = "uniform"  # GATE GCN weights: uniform U(+-1/sqrt(out)) (reference) | norm_preserving
gate_edge_op: bool = False  # node-level GATE MLP also sees the edge's own op, one-hot (needs router: node)
# optimisation
epochs: int = 30  # supernet training epochs
batch_size: int = 256  # training batch size
lr: float = 0.05  # SGD learning rate (also after each SRT restart)
momentum: float = 0.9  # SGD momentum
weight_decay: float = 0.0005  # SGD weight decay
grad_clip: "Optional[float]" = 5.0  # gradient-norm clipping (None: off)
plateau_factor: float = 0.5  # ReduceLROnPlateau factor
plateau_patience: int = 3  # ReduceLROnPlateau patience in epochs
srt_epochs: list = [13]  # epochs at which the learning rate restarts (SRT)
seed: int = 20  # training seed
device: str = "auto"  # auto | cpu | cuda | cuda:N
deterministic: bool = False  # deterministic GPU kernels (bitwise-exact resume on cuda, slower)
save_every: int = 5  # checkpoint period in epochs (the last epoch is always saved)
# scoring
archs: str = "truth"  # architectures to score: all | valid | sample:N | truth | a text file of arch strings
arch_seed: int = 0  # seed of sample:N
eval_routing: str = "argmax"  # argmax (deterministic) | gumbel (reference: sampled, seeded)
eval_seed: int = 123  # seed of gumbel routing at evaluation
bn_mode: str = "batch"  # batch statistics (reference) | recalibrate running statistics
recal_batches: int = 10  # training batches per architecture for bn_mode recalibrate
eval_batch_size: int = 256  # scoring batch size
eval_max_batches: "Optional[int]" = None  # held-out batches per architecture (None: all)
eval_every: int = 0  # probe-score eval_every_archs architectures every n epochs (0: never)
eval_every_archs: int = 50  # probe architectures (a seeded sample, arch_seed, of the scored ones); also block usage
# ground truth and output
truth: "Optional[str]" = "mini-nb201"  # ground truth: shipped name, CSV (arch, acc), minibench dir or official file
out_dir: str = "runs/nb201-mini-close"  # run directory: checkpoint (resumed when present), results.json
tensorboard: "Union[bool, str]" = False  # TensorBoard scalars: true (out_dir/tensorboard) | DIR (DIR/<run name>)

# %% [markdown]
# ## The run
# Every parameter above goes through `closekit.RunConfig` (unknown values and wrong types are refused), then
# `closekit.run` trains (one log line per epoch; curriculum events and SRT restarts as they happen), scores the
# configured architectures with the shared weights and ranks them against the ground truth. The checkpoint goes
# to `out_dir` and a rerun resumes from it (a finished run with other scoring keys is re-scored, not retrained);
# `out_dir/snapshots/` keeps the net at the last epoch of every curriculum level for
# `notebooks/gate_explorer.ipynb`.

# %%
import dataclasses
import os

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

import closekit
from closekit import plots
from closekit.metrics import by_k, headline

cfg = closekit.RunConfig.from_dict({f.name: globals()[f.name] for f in dataclasses.fields(closekit.RunConfig)})
os.environ.setdefault("CLOSEKIT_RECORD_DIR", cfg.out_dir)  # results.json: the batch job dir, else out_dir
result = closekit.run(cfg)
metrics, scores, truth_df = result.metrics, result.scores, result.truth

# %% [markdown]
# ## Result
# How well the one-shot scores rank the architectures against the ground truth, next to the best Kendall τ the
# ground truth itself allows (its seed mean against the noise-free ranking) and its seed-to-seed agreement.

# %%
if truth_df is not None:
    head = headline(metrics)
    display(Markdown(f"**{cfg.supernet}** on {cfg.space}, {metrics['n']} architectures vs `{metrics['truth']}`: "
                     + ", ".join(f"{k} = {v:.3f}" for k, v in head.items() if k != "n")))
    scores["truth_acc"] = scores["arch"].map(truth_df.set_index("arch")["acc"])
else:
    display(Markdown("No ground truth configured (`truth: None`): no ranking metrics, only the score summary. "
                     "Set `truth` to a CSV (`arch,acc`), a `closekit truth build` directory or an official file."))
    display(pd.Series({k: metrics[k] for k in metrics if k.startswith("oneshot")}).to_frame("value"))

# %% [markdown]
# One-shot accuracy against ground-truth accuracy.

# %%
if truth_df is not None:
    fig = plots.score_vs_truth(scores, truth_df, metrics)
    display(fig)
    plt.close(fig)
else:
    print("no ground truth: no score-vs-truth figure")

# %% [markdown]
# Training trajectory: loss and accuracy of the sampled architectures per epoch (probe scores when
# `eval_every` > 0); dashed lines mark curriculum levels, dotted lines SRT restarts.

# %%
fig = plots.trajectory(result.history, cfg.srt_epochs)
display(fig)
plt.close(fig)

# %% [markdown]
# GLOW-block usage: how many probe architectures (a seeded sample) route each slot to each block, at the last
# epoch of every curriculum level (CLOSE only).

# %%
if cfg.supernet == "close":
    fig = plots.block_usage(result.usage)
    display(fig)
    plt.close(fig)
else:
    print("vanilla supernet: slot i always uses block i")

# %% [markdown]
# ## Details
# Ranking metrics at every K (P@top/bottom-K, Kendall τ within the predicted top/bottom K, best/worst true rank
# among the predicted top K), the score summary, the ten best architectures by one-shot score, and the
# configuration keys that differ from the defaults.

# %%
if truth_df is not None:
    display(by_k(metrics).round(3))
summary = {k: v for k, v in metrics.items() if "@" not in k and k not in ("n",)}
display(pd.Series(summary, name="value").to_frame())
display(scores.sort_values(["acc", "loss"], ascending=[True, False]).tail(10)[::-1])
defaults = closekit.RunConfig().to_dict()
print("config (non-default keys):", {k: v for k, v in cfg.to_dict().items() if v != defaults[k]} or "all defaults")

# %% [markdown]
# Everything above, recorded for `closekit.read_results` / `compare.ipynb`: the flat metrics (score summary,
# ranking metrics, ground-truth ceilings), the config, the history, the block usage and the per-architecture
# scores.

# %%
recorded = closekit.record(**metrics, config=cfg.to_dict(), history=result.history, block_usage=result.usage,
                           scores=scores)
