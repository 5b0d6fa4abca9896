"""A tiny NB301 surrogate ensemble in the package's real format, and the independent check (run in its venv).

``python tests/nb301_surrogate_fixture.py build DIR --members 3`` writes DIR/member_<i>/ with
``surrogate_model.model`` (a pickled xgboost Booster, as XGBModel.save writes it), ``model_config.json``
({"model": "xgb", ...}) and ``data_config.json`` ({"seed": ...}); each Booster is fit on random genotypes
encoded as the 56 ConfigSpace features the way nasbench301's XGBModel.query encodes a config.

``python tests/nb301_surrogate_fixture.py expect DIR ARCHS`` prints JSON: per arch, every member's own Booster
prediction on features computed here, independently of nasbench301's code (own genotype -> config mapping, own
copy of the fixed training hyper-parameters, ConfigSpace read from the package's configspace.json with the
overrides nasbench301's ConfigLoader applies), and their mean.
"""
import argparse
import importlib.util
import json
import pickle
import random
import re
import sys
from pathlib import Path

OPS = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
       "dil_conv_5x5"]
P = "NetworkSelectorDatasetInfo:darts:"
FIXED = {  # the NB301 training hyper-parameters (nasbench301/api.py fixed_hyperparameters), written out here
    "CreateImageDataLoader:batch_size": 96, "ImageAugmentation:augment": "True", "ImageAugmentation:cutout": "True",
    "ImageAugmentation:cutout_holes": 1, "ImageAugmentation:cutout_length": 16,
    "ImageAugmentation:autoaugment": "False", "ImageAugmentation:fastautoaugment": "False",
    "LossModuleSelectorIndices:loss_module": "cross_entropy", P + "auxiliary": "True", P + "drop_path_prob": 0.2,
    "NetworkSelectorDatasetInfo:network": "darts", "OptimizerSelector:optimizer": "sgd",
    "OptimizerSelector:sgd:learning_rate": 0.025, "OptimizerSelector:sgd:momentum": 0.9,
    "OptimizerSelector:sgd:weight_decay": 0.0003, "SimpleLearningrateSchedulerSelector:cosine_annealing:T_max": 100,
    "SimpleLearningrateSchedulerSelector:cosine_annealing:eta_min": 1e-8,
    "SimpleLearningrateSchedulerSelector:lr_scheduler": "cosine_annealing",
    "SimpleTrainNode:batch_loss_computation_technique": "mixup", "SimpleTrainNode:mixup:alpha": 0.2,
    P + "init_channels": 32, P + "layers": 8}
OFFSET = [0, 2, 5, 9]   # node k (2..5) owns edges offset[k-2] + input


def cells_of(text):
    """{'normal': [(op, input) x 8], 'reduce': [...]} read from a DARTS genotype string by regex."""
    out = {}
    for cell in ("normal", "reduce"):
        body = re.search(rf"\b{cell}=\[(.*?)\]", text).group(1)
        out[cell] = [(op, int(i)) for op, i in re.findall(r"\('(\w+)', (\d+)\)", body)]
        assert len(out[cell]) == 8, text
    return out


def config_dict(cells):
    """NB301 ConfigSpace dict (architecture keys plus FIXED) of one genotype."""
    d = dict(FIXED)
    for cell, pairs in cells.items():
        for k in range(4):
            (op_a, a), (op_b, b) = pairs[2 * k], pairs[2 * k + 1]
            d[f"{P}edge_{cell}_{OFFSET[k] + a}"] = op_a
            d[f"{P}edge_{cell}_{OFFSET[k] + b}"] = op_b
            if k:
                d[f"{P}inputs_node_{cell}_{k + 2}"] = f"{min(a, b)}_{max(a, b)}"
    return d


def config_space():
    """The package's configspace.json with the four hyper-parameters nasbench301 widens before encoding."""
    import ConfigSpace.hyperparameters as H
    from ConfigSpace.read_and_write import json as cs_json
    root = Path(importlib.util.find_spec("nasbench301").submodule_search_locations[0])   # not imported
    cs = cs_json.read((root / "configspace.json").read_text())
    new = [H.UniformIntegerHyperparameter(P + "layers", lower=1, upper=10000),
           H.UniformIntegerHyperparameter("SimpleLearningrateSchedulerSelector:cosine_annealing:T_max", 1, 10000),
           H.UniformIntegerHyperparameter(P + "init_channels", lower=1, upper=10000),
           H.UniformFloatHyperparameter("SimpleLearningrateSchedulerSelector:cosine_annealing:eta_min", 0, 10000)]
    for hp in new:
        cs._hyperparameters.pop(hp.name)
    cs.add_hyperparameters(new)
    return cs


def features(cs, texts_or_cells):
    """(n, 56) float array: ConfigSpace vector of each config, inactive (NaN) entries set to -1."""
    import numpy as np
    from ConfigSpace import Configuration
    rows = []
    for c in texts_or_cells:
        d = config_dict(cells_of(c) if isinstance(c, str) else c)
        d = {k: {"True": True, "False": False}.get(v, v) if isinstance(v, str) else v for k, v in d.items()}
        rows.append(Configuration(cs, values=d).get_array())
    x = np.array(rows)
    x[np.isnan(x)] = -1
    return x


def random_cells(rng):
    """A uniformly sampled genotype: two distinct inputs per node, ops from the 7 primitives."""
    cells = {}
    for cell in ("normal", "reduce"):
        pairs = []
        for k in range(4):
            for src in sorted(rng.sample(range(k + 2), 2)):
                pairs.append((rng.choice(OPS), src))
        cells[cell] = pairs
    return cells


def build(out, members=3, n=300):
    """Write a ``members``-member xgb ensemble under ``out``, each fit on its own noisy labels."""
    import numpy as np
    import xgboost as xgb
    cs = config_space()
    rng = random.Random(0)
    train = [random_cells(rng) for _ in range(n)]
    x = features(cs, train)
    assert x.shape == (n, 56), x.shape
    convs = np.array([sum(op.startswith(("sep", "dil")) for op, _ in c["normal"]) for c in train], float)
    skips = np.array([sum(op == "skip_connect" for op, _ in c["reduce"]) for c in train], float)
    for m in range(members):
        noise = np.random.RandomState(m).normal(0, 0.3, n)
        y = 90.0 + 0.5 * convs - 0.4 * skips + noise                 # % accuracy, like the NB301 targets
        params = {"objective": "reg:squarederror", "eval_metric": "rmse", "max_depth": 3, "eta": 0.3,
                  "subsample": 0.8, "seed": m}
        booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=30)
        d = Path(out) / f"member_{m}"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "surrogate_model.model", "wb") as f:
            pickle.dump(booster, f)
        (d / "model_config.json").write_text(json.dumps({"model": "xgb", "param:max_depth": 3, "param:eta": 0.3,
                                                         "param:subsample": 0.8, "param:num_rounds": 30,
                                                         "early_stopping_rounds": 100, "param:bananas_enc": False}))
        (d / "data_config.json").write_text(json.dumps({"seed": m}))


def expect(ensemble, archs_file):
    """Per arch: each member Booster's prediction (%) on the independently computed features, and their mean."""
    import numpy as np
    import xgboost as xgb
    texts = [s.strip() for s in Path(archs_file).read_text().splitlines() if s.strip()]
    x = features(config_space(), texts)
    preds = []
    for f in sorted(Path(ensemble).rglob("surrogate_model.model")):
        with open(f, "rb") as fh:
            preds.append(pickle.load(fh).predict(xgb.DMatrix(x)).astype(float))
    preds = np.array(preds)                                  # (members, archs)
    return [{"arch": t, "members": preds[:, i].tolist(), "mean": float(preds[:, i].mean())}
            for i, t in enumerate(texts)]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["build", "expect"])
    ap.add_argument("dir")
    ap.add_argument("archs", nargs="?")
    ap.add_argument("--members", type=int, default=3)
    a = ap.parse_args()
    if a.cmd == "build":
        build(a.dir, a.members)
    else:
        json.dump(expect(a.dir, a.archs), sys.stdout)
