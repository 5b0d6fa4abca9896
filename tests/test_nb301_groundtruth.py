"""NB301 ground truth (closekit.groundtruth.nb301 and the generic table reader) on files in the true formats built
from plain Python types: NB301 training-data records (results_*.json as the dataset ships them), a CSV table with
archs in the three formats, the reference's YAML arch list; wrong-space and malformed files fail in one line."""
import json

import pytest
import yaml

from closekit import groundtruth
from closekit.evaluate import arch_list
from closekit.groundtruth.nb301 import load_records
from closekit.spaces import get
from closekit.spaces import nb301_arch as A

SPACE = get("nb301")
V2 = get("nb301").notable()["DARTS-V2"]
P = "NetworkSelectorDatasetInfo:darts:"
# hyper-parameters every record's config carries besides the architecture (nasbench301 configspace.json names)
HYPER = {"CreateImageDataLoader:batch_size": 96, "ImageAugmentation:augment": "True",
         "ImageAugmentation:cutout": "True", "ImageAugmentation:cutout_length": 16,
         P + "auxiliary": "True", P + "drop_path_prob": 0.2, P + "init_channels": 32, P + "layers": 8,
         "NetworkSelectorDatasetInfo:network": "darts", "OptimizerSelector:optimizer": "sgd",
         "OptimizerSelector:sgd:learning_rate": 0.025, "SimpleTrainNode:batch_loss_computation_technique": "mixup"}


def record(arch, val, test):
    """One results_*.json of the NB301 dataset (the fields of the wheel's test record)."""
    return {"final_metric_score": -val, "optimized_hyperparamater_config": {**HYPER, **A.to_config(arch)},
            "budget": 100, "info": [{"train_loss": 0.7, "train_accuracy": 86.6, "val_accuracy": val,
                                     "epochs": 100, "model_parameters": 1_000_000, "val_datapoints": 10000}],
            "test_accuracy": test, "runtime": 3600}


@pytest.fixture
def archs():
    return [SPACE.parse(V2)] + SPACE.sample_list(3, 5)


def test_records_one_file_and_a_directory(tmp_path, archs):
    d = tmp_path / "nb301_dataset" / "rs"
    d.mkdir(parents=True)
    vals = [(94.0, 93.5), (91.0, 90.0), (88.5, 88.0), (90.0, 89.0)]
    for i, (a, (v, t)) in enumerate(zip(archs, vals)):
        (d / f"results_{i}.json").write_text(json.dumps(record(a, v, t)))
    # a repeated evaluation of DARTS-V2, its config written with the other input order of each node
    swapped = [[c[i ^ 1] for i in range(8)] for c in archs[0]]
    (d / "results_9.json").write_text(json.dumps(record(swapped, 95.0, 94.5)))
    one = groundtruth.load(str(d / "results_1.json"), SPACE)
    assert one["arch"].tolist() == [SPACE.canonical_str(archs[1])] and one["acc"].tolist() == [0.91]
    df = groundtruth.load(str(tmp_path / "nb301_dataset"), SPACE)
    assert len(df) == 4 and df.attrs["version"] == "nb301-data-val"
    row = df.set_index("arch").loc[SPACE.canonical_str(V2)]
    assert row["acc"] == pytest.approx(0.945) and row["n_records"] == 2 and row["test_acc"] == pytest.approx(0.94)
    test = groundtruth.load(f"{d}?metric=test", SPACE)
    assert test.set_index("arch")["acc"][SPACE.canonical_str(archs[2])] == pytest.approx(0.88)


def test_records_of_another_benchmark_or_broken_fail_in_one_line(tmp_path, archs):
    bad = tmp_path / "results_0.json"
    bad.write_text(json.dumps({"arch": "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "acc": 0.9}))
    with pytest.raises(ValueError, match="has no 'optimized_hyperparamater_config'") as e:
        groundtruth.load(str(bad), SPACE)
    assert "\n" not in str(e.value)
    r = record(archs[0], 90.0, 89.0)
    del r["optimized_hyperparamater_config"][P + "inputs_node_reduce_5"]
    bad.write_text(json.dumps(r))
    with pytest.raises(ValueError, match="lacks 'NetworkSelectorDatasetInfo:darts:inputs_node_reduce_5'"):
        load_records(bad, space=SPACE)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not readable JSON"):
        load_records(bad, space=SPACE)
    with pytest.raises(ValueError, match="unknown option"):
        groundtruth.load(f"{bad}?dataset=cifar10", SPACE)


def test_csv_table_in_all_three_formats(tmp_path, archs):
    import pandas as pd
    rows = [(SPACE.to_str(archs[0]), 0.94), (A.to_awnas(archs[1]), 0.91), (json.dumps(A.to_config(archs[2])), 0.88)]
    path = tmp_path / "nb301_surrogate.csv"
    pd.DataFrame(rows, columns=["arch", "acc"]).to_csv(path, index=False)
    df = groundtruth.load(str(path), SPACE)
    assert df["arch"].tolist() == [SPACE.canonical_str(a) for a in archs[:3]] and df["acc"].tolist() == [.94, .91, .88]
    # an NB201 table is not an NB301 ground truth, and vice versa
    nb201 = tmp_path / "nb201.csv"
    nb201.write_text("arch,acc\n|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|,0.5\n")
    with pytest.raises(ValueError, match="line 2 does not belong to space nb301"):
        groundtruth.load(str(nb201), SPACE)
    with pytest.raises(ValueError, match="does not belong to space nb201"):
        groundtruth.load(str(path), get("nb201"))


def test_yaml_arch_list_as_the_reference(tmp_path, archs):
    # aw_nas nb301_archs.yaml: a YAML list of aw_nas genotype strings, long entries folded over lines, repeats
    entries = [A.to_awnas(a) for a in archs] + [A.to_awnas(archs[0]), A.to_awnas(archs[2])]
    path = tmp_path / "nb301_archs.yaml"
    import yaml
    path.write_text(yaml.safe_dump(entries, width=80))
    assert "\n  " in path.read_text()                                     # folded as the public copy is
    assert [SPACE.to_str(a) for a in arch_list(SPACE, str(path))] == [SPACE.canonical_str(a) for a in archs]
    path.write_text(yaml.safe_dump({"archs": entries[:2]}))
    assert [SPACE.to_str(a) for a in arch_list(SPACE, str(path))] == [SPACE.canonical_str(a) for a in archs[:2]]
    path.write_text(yaml.safe_dump(["|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"]))
    with pytest.raises(ValueError, match="entry 0: bad NB301"):
        arch_list(SPACE, str(path))


def test_the_arch_list_given_as_a_truth_is_named_for_what_it_is(tmp_path, archs):
    """Issue 25 #8: NB301's archs.yaml as a truth was reported as 'not found'."""
    path = tmp_path / "nb301_archs.yaml"
    path.write_text(yaml.safe_dump(archs))
    with pytest.raises(ValueError, match="nb301_archs.yaml is a YAML file \\(an architecture list goes to archs=; a "
                                         "ground truth needs accuracies\\), not a ground truth of nb301"):
        groundtruth.load(str(path), SPACE)
