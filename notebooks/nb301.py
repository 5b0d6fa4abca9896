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

# %% tags=["parameters"]
# The RunConfig keys this space's params files set (any other key: RunConfig's default). A key some file leaves
# out defaults to RunConfig's value, so that a params file means here what it means to `closekit train`.
# data
space: str = "nb301"  # search space (closekit.spaces registry)
dataset: str = "embedded"  # embedded | fashion-mnist | cifar10 | synthetic
data_dir: "Optional[str]" = None  # dataset files (None: the dataset's default place)
download: bool = False  # torchvision download for cifar10
image_size: "Optional[int]" = 12  # input resolution (None: native)
train_portion: float = 0.8  # first part of the training set trains the supernet, the rest scores (< 1)
train_limit: "Optional[int]" = None  # keep only the first n training images (None: all)
# supernet
supernet: str = "close"  # vanilla (one block per possible edge, 14 per cell, fixed router) | close (GLOW bank + GATE)
channels_init: int = 8  # C: cell channels before the first reduction (then 2C, 4C)
cells_per_stage: int = 1  # N: 3N+2 DARTS cells, reductions at N and 2N+1
dropout: float = 0.1  # dropout before the classifier
# CLOSE sharing (ignored by vanilla)
num_blocks: int = 5  # GLOW blocks per cell
cl_schedule: list = [1, 7, 13, 19, 25]  # epoch at which each GLOW block becomes active (sorted, starts at 1)
router: str = "auto"  # auto (the GATE) | gate | random | oneblock | fewshot (closekit.sharing.ROUTERS)
fewshot_edge: int = 0  # few-shot router: the connection (0-7 normal, 8-15 reduce) whose op picks the sub-supernet
gates_op_dim: int = 48  # GATES op embedding size
gates_node_dim: int = 48  # GATES node embedding size
gates_hidden: int = 96  # GATES hidden size
gates_gcn_dims: list = [128, 128, 128, 128, 128]  # GATES graph-convolution layer sizes
mlp_hidden: list = [200, 200, 200]  # GATE MLP hidden sizes
mlp_dropout: float = 0.1  # GATE MLP dropout
mlp_growth: str = "inherit"  # inherit (new row gets the parent row added) | only_last | full (re-init)
wit_from: str = "prev"  # WIT parent: prev (previous block) | random (a random earlier block)
gate_forward: "Optional[str]" = None  # all (reference) | others_no_grad (None: this; same updates, less work) | selected
aw_nas_compat: bool = False  # reproduce the reference's orphaned GATE params and level-1 GATE decay
# optimisation
epochs: int = 30  # supernet training epochs
batch_size: int = 128  # training batch size
lr: float = 0.05  # SGD learning rate (also after each SRT restart)
momentum: float = 0.9  # SGD momentum
weight_decay: float = 0.0005  # SGD weight decay
grad_clip: "Optional[float]" = 5.0  # gradient-norm clipping (None: off)
plateau_factor: float = 0.5  # ReduceLROnPlateau factor
plateau_patience: int = 3  # ReduceLROnPlateau patience in epochs
srt_epochs: list = [13]  # epochs at which the learning rate restarts (SRT)
seed: int = 20  # training seed
save_every: int = 5  # checkpoint period in epochs (the last epoch is always saved)
# scoring
archs: str = "truth"  # architectures to score: all | valid | sample:N | truth | a text file of arch strings
eval_routing: str = "argmax"  # argmax (deterministic) | gumbel (reference: sampled, seeded)
eval_seed: int = 123  # seed of gumbel routing at evaluation
bn_mode: str = "batch"  # batch statistics (reference) | recalibrate running statistics
eval_batch_size: int = 256  # scoring batch size
eval_max_batches: "Optional[int]" = None  # held-out batches per architecture (None: all)
# ground truth and output
truth: "Optional[str]" = "mini-nb301"  # ground truth: shipped name, CSV (arch, acc), minibench dir or official file
out_dir: str = "runs/nb301-mini-close"  # run directory: checkpoint (resumed when present), results.json
record_dir: "Optional[str]" = None  # results.json here (None: out_dir); closekit batch passes its job directory

# %%
from closekit import report, run

log = report.Log()                                # the live training log, then the headline in its place
result = run(report.config(globals()), log=log, name=record_dir)   # a batch job names its TensorBoard run
report.headline(result, log)

# %% [markdown]
# **What ran.** CLOSE (Zhou et al., ECCV 2022) on NAS-Bench-301, the DARTS space: a genotype is a normal and a
# reduction cell, each node taking two (op, input) pairs from the 7 DARTS ops; the supernet is the DARTS macro
# network (3N+2 cells). Every cell holds K GLOW blocks (reduction cells K stride-1 and K stride-2 ones) and a GATE
# reads both cell graphs and routes each of the 8 chosen connections per cell type. One params file by hand (results
# next to its run): `papermill notebooks/nb301.ipynb runs/x/nb301.ipynb -f params/nb301/mini-close.yaml -p out_dir
# runs/x`; many: `closekit batch notebooks/nb301.ipynb params/nb301/*.yaml --out runs/batch`, then `compare.ipynb`.

# %%
report.body(result, log, record_dir)              # figures, details, the log; results.json (see record_dir)
