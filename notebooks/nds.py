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
space: str = "nds-resnet"  # nds-resnet | nds-resnexta
dataset: str = "embedded"  # embedded | fashion-mnist | cifar10 | synthetic
data_dir: "Optional[str]" = None  # dataset files (None: the dataset's default place)
download: bool = False  # torchvision download for cifar10
image_size: "Optional[int]" = 12  # input resolution (None: native)
train_portion: float = 0.8  # first part of the training set trains the supernet, the rest scores (< 1)
train_limit: "Optional[int]" = None  # keep only the first n training images (None: all)
# supernet
supernet: str = "close"  # vanilla (one block per position) | close (shared blocks, split table grown by the curriculum)
channels_init: int = 2  # stem width; every width scales by channels_init / 16 (16: the reference)
# CLOSE sharing: the position -> block split table (ignored by vanilla)
num_blocks: int = 5  # CLOSE: shared blocks per stage (reference 17 ResNet, 13 ResNeXt-A, at most the positions)
cl_schedule: list = [1, 7, 13, 19, 25]  # epoch at which each block becomes active
cl_criteria: str = "pre"  # NDS split table: pre (shallowest long group, reference) | max (longest group)
wit_buffers: bool = True  # NDS WIT sums BN running stats too (reference) | false: parameters only
gate_forward: "Optional[str]" = None  # None: NDS has no GATE (any other value is refused)
# optimisation
epochs: int = 20  # supernet training epochs
batch_size: int = 128  # training batch size
lr: float = 0.05  # SGD learning rate (also after each SRT restart)
momentum: float = 0.9  # SGD momentum
weight_decay: float = 5e-05  # SGD weight decay
grad_clip: "Optional[float]" = None  # gradient-norm clipping (None: off)
plateau_factor: float = 0.5  # ReduceLROnPlateau factor
plateau_patience: int = 3  # ReduceLROnPlateau patience in epochs
srt_epochs: list = [9]  # epochs at which the learning rate restarts (SRT)
seed: int = 20  # training seed
save_every: int = 5  # checkpoint period in epochs (the last epoch is always saved)
# scoring
archs: str = "truth"  # architectures to score: all | valid | sample:N | truth | a text file of arch strings
eval_seed: int = 123  # seed of gumbel routing at evaluation
bn_mode: str = "batch"  # batch statistics (reference) | recalibrate running statistics
eval_batch_size: int = 256  # scoring batch size
eval_max_batches: "Optional[int]" = None  # held-out batches per architecture (None: all)
# ground truth and output
truth: "Optional[str]" = "mini-nds-resnet"  # ground truth: shipped mini-nds-resnet, CSV (arch, acc), minibench dir, NDS JSON / aw_nas .pkl
out_dir: str = "runs/nds-resnet-mini-close"  # run directory: checkpoint (resumed when present), results.json
record_dir: "Optional[str]" = None  # results.json here (None: out_dir); closekit batch passes its job directory

# %%
from closekit import report, run

log = report.Log()                                # the live training log, then the headline in its place
result = run(report.config(globals()), log=log, name=record_dir)   # a batch job names its TensorBoard run
report.headline(result, log)

# %% [markdown]
# **What ran.** CLOSE (Zhou et al., ECCV 2022) on the NDS design spaces (Radosavovic et al., ICCV 2019; `space`:
# `nds-resnet` or `nds-resnexta`): no cell graph and no GATE. Each stage runs an unshared first block, then one
# shared block per depth position, and a position -> block table (the same in the three stages) says which; each
# curriculum level splits one group of contiguous positions in two (WIT from the split block). One block runs per
# position either way, so CLOSE costs what vanilla costs. One params file by hand (results next to its run):
# `papermill notebooks/nds.ipynb runs/x/nds.ipynb -f params/nds/resnet-mini-close.yaml -p out_dir runs/x`; many:
# `closekit batch notebooks/nds.ipynb params/nds/resnet-mini-*.yaml --out runs/batch`, then `compare.ipynb`.

# %%
report.body(result, log, record_dir)              # figures, details, the log; results.json (see record_dir)
