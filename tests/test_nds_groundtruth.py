"""Official NDS ground truth from fixtures in the true formats: sweep JSON (list, dict, 3 seed files), the aw_nas
YAML + 4-list pickle pair (and a malicious pickle), a CSV; files of another space fail in one line."""
import json
import os
import pickle
from collections import OrderedDict

import pandas as pd
import pytest
import yaml

from closekit import groundtruth, spaces

RESNET, RESNEXTA = spaces.get("nds-resnet"), spaces.get("nds-resnexta")


def record(ds, ws, err, last, seed=1, params=1000, bot=None, gs=None, block="res_basic_block"):
    """One NDS sweep record as the JSON holds it (plain types)."""
    net = {"block_type": block, "ds": [1, *ds], "ws": [16, *ws], "ss": [1, 1, 2, 2]}
    if bot is not None:
        net.update(bot_muls=[0.0, *bot], num_gs=[1, *gs])
    return {"job_id": f"j{seed}-{ds}-{ws}", "rng_seed": seed, "params": params, "flops": 10 * params,
            "net": net, "optim": {"base_lr": 0.1, "max_ep": 3, "wd": 5e-4}, "min_test_top1": err,
            "test_ep_top1": [60.0, err + 2.0, last], "train_ep_top1": [70.0, 40.0, 20.0]}


CONFIGS = [((1, 2, 3), (16, 24, 32), 10.0, 11.0), ((12, 12, 16), (24, 32, 40), 6.0, 6.5),
           ((24, 1, 4), (256, 16, 64), 8.0, 9.0)]


def write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_sweep_json_list_and_metrics(tmp_path):
    f = write(tmp_path / "ResNet.json", [record(d, w, e, last) for d, w, e, last in CONFIGS])
    gt = groundtruth.load(str(f), RESNET)
    assert gt["arch"].tolist() == ["d1_2_3-w16_24_32", "d12_12_16-w24_32_40", "d24_1_4-w256_16_64"]
    assert gt["acc"].tolist() == pytest.approx([.90, .94, .92]) and gt["params"].tolist() == [1000] * 3
    assert gt.attrs["version"] == "nds-resnet-min_test_top1-1seed"
    last = groundtruth.load(f"{f}?metric=last", RESNET)
    assert last["acc"].tolist() == pytest.approx([.89, .935, .91])


def test_sweep_json_dict_form_and_repeats_averaged(tmp_path):
    recs = [record(d, w, e, last) for d, w, e, last in CONFIGS]
    f = write(tmp_path / "ResNet_reruns.json", {"top": recs[:2], "mid": [recs[2], record((1, 2, 3), (16, 24, 32), 12.0,
                                                                                     12.0)]})
    gt = groundtruth.load(str(f), RESNET)
    assert len(gt) == 3 and gt.set_index("arch").loc["d1_2_3-w16_24_32", "acc"] == pytest.approx(.89)


def test_three_seed_files_are_averaged_per_configuration(tmp_path):
    for s, shift in ((1, 0.0), (2, 1.0), (3, 2.0)):
        recs = [record(d, w, e + shift, last, seed=s) for d, w, e, last in CONFIGS]
        write(tmp_path / f"ResNet_rng{s}.json", recs if s % 2 else recs[::-1])     # matched by config, not order
    gt = groundtruth.load(str(tmp_path / "ResNet_rng*.json"), RESNET)
    assert gt.attrs["version"] == "nds-resnet-min_test_top1-3seed" and (gt["n_seeds"] == 3).all()
    assert gt.set_index("arch")["acc"].to_dict() == pytest.approx(
        {"d1_2_3-w16_24_32": .89, "d12_12_16-w24_32_40": .93, "d24_1_4-w256_16_64": .91})
    write(tmp_path / "ResNet_rng3.json", [record(d, w, e, last, seed=3) for d, w, e, last in CONFIGS[:2]])
    with pytest.raises(ValueError, match="d24_1_4-w256_16_64 is missing from .*rng3.json"):
        groundtruth.load(str(tmp_path / "ResNet_rng*.json"), RESNET)


def test_resnexta_records_and_another_spaces_file_fail_in_one_line(tmp_path):
    rx = [record((16, 1, 4), (64, 128, 16), 7.0, 7.5, bot=(.25, .25, .25), gs=(2, 1, 2), block="res_bottleneck_block"),
          record((1, 1, 1), (16, 16, 16), 30.0, 31.0, bot=(1.0, 0.5, 1), gs=(1, 1, 4), block="res_bottleneck_block")]
    f = write(tmp_path / "ResNeXt-A.json", rx)
    gt = groundtruth.load(str(f), RESNEXTA)
    assert gt["arch"].tolist() == ["d16_1_4-w64_128_16-b0.25_0.25_0.25-g2_1_2", "d1_1_1-w16_16_16-b1_0.5_1-g1_1_4"]
    for spec, space, words in ((str(f), RESNET, "does not belong to space nds-resnet"),
                               (str(write(tmp_path / "ResNet.json", [record((1, 1, 1), (16, 16, 16), 9., 9.)])),
                                RESNEXTA, "does not belong to space nds-resnexta"),
                               (str(write(tmp_path / "DARTS.json", [{"genotype": "x", "min_test_top1": 5.0}])),
                                RESNET, "has no 'net' dict")):
        with pytest.raises(ValueError) as e:
            groundtruth.load(spec, space)
        assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown option.*metric"):
        groundtruth.load(f"{f}?metrc=last", RESNEXTA)



def test_a_records_net_is_read_as_an_nds_net_dict(tmp_path):
    """Review 2: a record's ``net`` is an NDS net dict (its ds list checked), not any arch the space's coerce takes."""
    net = record((1, 1, 1), (16, 16, 16), 9., 9.)["net"]
    genotype_keys = {f"{k}.{i}": v for k, vals in (("depths", (1, 1, 1)), ("widths", (16, 16, 16)))
                     for i, v in enumerate(vals)}
    for bad, words in (({k: v for k, v in net.items() if k != "ds"}, "net ds=None must be a 4-entry list"),
                       ("d1_1_1-w16_16_16", "record 0 has no 'net' dict"),
                       (genotype_keys, "record 0 does not belong to space nds-resnet")):
        f = write(tmp_path / "ResNet.json", [{**record((1, 1, 1), (16, 16, 16), 9., 9.), "net": bad}])
        with pytest.raises(ValueError, match=words):
            groundtruth.load(str(f), RESNET)

def genotype(d, w):
    return str(OrderedDict([*((f"depths.{i}", v) for i, v in enumerate(d)),
                            *((f"widths.{i}", v) for i, v in enumerate(w))]))


def test_awnas_yaml_and_pickle_pair(tmp_path):
    genos = [genotype(d, w) for d, w, _, _ in CONFIGS]
    (tmp_path / "resnet_archs_5k_3seed.yaml").write_text(yaml.safe_dump(genos))
    with open(tmp_path / "resnet_gt_5k_3seed.pkl", "wb") as f:
        pickle.dump([genos, [1000, 2000, 3000], [1e7, 2e7, 3e7], [90.0, 94.5, 92.25]], f)
    gt = groundtruth.load(str(tmp_path / "resnet_gt_5k_3seed.pkl"), RESNET)
    assert gt["arch"].tolist()[1] == "d12_12_16-w24_32_40" and gt["acc"].tolist() == pytest.approx([.9, .945, .9225])
    assert gt["params"].tolist() == [1000, 2000, 3000] and gt.attrs["version"] == "nds-resnet-awnas-resnet_gt_5k_3seed"
    via_yaml = groundtruth.load(str(tmp_path / "resnet_archs_5k_3seed.yaml"), RESNET)
    assert via_yaml.equals(gt)
    (tmp_path / "resnet_archs_5k_3seed.yaml").write_text(yaml.safe_dump(genos[::-1]))
    with pytest.raises(ValueError, match="differ at entry 0"):
        groundtruth.load(str(tmp_path / "resnet_archs_5k_3seed.yaml"), RESNET)
    with pytest.raises(ValueError, match="entry 0 does not belong to space nds-resnexta"):
        groundtruth.load(str(tmp_path / "resnet_gt_5k_3seed.pkl"), RESNEXTA)


class Evil:
    """Pickles into a call of os.system (what a malicious GT pickle would hold)."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def test_malicious_pickle_is_refused_in_one_line_and_runs_nothing(tmp_path):
    target = tmp_path / "pwned"
    with open(tmp_path / "evil_gt.pkl", "wb") as f:
        pickle.dump([[genotype((1, 1, 1), (16, 16, 16))], [1], [1], [Evil(target)]], f)
    with pytest.raises(ValueError) as e:
        groundtruth.load(str(tmp_path / "evil_gt.pkl"), RESNET)
    assert "refused" in str(e.value) and "system" in str(e.value) and "\n" not in str(e.value)
    assert not target.exists()
    with open(tmp_path / "frame_gt.pkl", "wb") as f:                # a DataFrame is a class too
        pickle.dump(pd.DataFrame({"a": [1]}), f)
    with pytest.raises(ValueError, match="refused: it asks for pandas"):
        groundtruth.load(str(tmp_path / "frame_gt.pkl"), RESNET)
    with open(tmp_path / "short_gt.pkl", "wb") as f:
        pickle.dump([["x"], [1]], f)
    with pytest.raises(ValueError, match="is not the aw_nas 4-list"):
        groundtruth.load(str(tmp_path / "short_gt.pkl"), RESNET)


def test_csv_arch_acc_in_any_arch_format(tmp_path):
    pd.DataFrame({"arch": ["d1_2_3-w16_24_32", genotype((12, 12, 16), (24, 32, 40))], "acc": [.9, .94]}) \
        .to_csv(tmp_path / "nds.csv", index=False)
    gt = groundtruth.load(str(tmp_path / "nds.csv"), RESNET)
    assert gt["arch"].tolist() == ["d1_2_3-w16_24_32", "d12_12_16-w24_32_40"] and gt.attrs["version"] == "nds"
    with pytest.raises(ValueError, match="line 2 does not belong to space nds-resnexta"):
        groundtruth.load(str(tmp_path / "nds.csv"), RESNEXTA)


def test_size_baseline_ranks_by_params_or_flops():
    from closekit.metrics import size_baseline
    archs = ["d1_1_1-w16_16_16", "d2_2_2-w32_32_32", "d4_4_4-w64_64_64", "d8_8_8-w128_128_128"]
    truth = pd.DataFrame({"arch": archs, "acc": [.5, .6, .7, .8]})
    assert size_baseline(truth, RESNET)["kendall"] == pytest.approx(1.0)             # complexity() at 32x32
    assert size_baseline(truth, RESNET, by="flops")["kendall"] == pytest.approx(1.0)
    truth["params"] = [4, 3, 2, 1]                                                    # the truth's own column wins
    assert size_baseline(truth, RESNET)["kendall"] == pytest.approx(-1.0)


def test_empty_or_truncated_pickle_is_one_line(tmp_path):
    """Issue 25 #6: an empty NDS pickle gave EOFError."""
    (tmp_path / "empty_gt.pkl").write_bytes(b"")
    with pytest.raises(ValueError, match="empty_gt.pkl is empty \\(0 bytes\\)") as e:
        groundtruth.load(str(tmp_path / "empty_gt.pkl"), RESNET)
    assert "\n" not in str(e.value)
    (tmp_path / "cut_gt.pkl").write_bytes(pickle.dumps([["x"], [1], [1], [90.0]])[:-5])
    with pytest.raises(ValueError, match="cut_gt.pkl is truncated or not a pickle"):
        groundtruth.load(str(tmp_path / "cut_gt.pkl"), RESNET)


def test_a_file_of_another_kind_is_named_for_what_it_is(tmp_path):
    """Issue 25 #8: an NDS pickle given to nb201 (and an arch list given as a truth) said 'not found'."""
    with open(tmp_path / "resnet_gt_5k_3seed.pkl", "wb") as f:
        pickle.dump([[genotype((1, 1, 1), (16, 16, 16))], [1], [1], [90.0]], f)
    with pytest.raises(ValueError, match="is an official ground-truth file of space nds-resnet, nds-resnexta, not a "
                                         "ground truth of nb201") as e:
        groundtruth.load(str(tmp_path / "resnet_gt_5k_3seed.pkl"), spaces.get("nb201"))
    assert "\n" not in str(e.value) and "not found" not in str(e.value)
    (tmp_path / "archs.yaml").write_text("- d1_1_1-w16_16_16\n")
    with pytest.raises(ValueError, match="archs.yaml is a YAML file \\(an architecture list goes to archs="):
        groundtruth.load(str(tmp_path / "archs.yaml"), RESNET)


def test_non_utf8_arch_list_names_the_file(tmp_path):
    genos = [genotype((1, 1, 1), (16, 16, 16))]
    with open(tmp_path / "resnet_gt_x.pkl", "wb") as f:
        pickle.dump([genos, [1], [1], [90.0]], f)
    (tmp_path / "resnet_archs_x.yaml").write_bytes(b"- caf\xe9\n")
    with pytest.raises(ValueError, match="arch list .*resnet_archs_x.yaml is not UTF-8 text \\(byte 5"):
        groundtruth.load(str(tmp_path / "resnet_archs_x.yaml"), RESNET)


def test_authors_flops_add_five_per_conv_output_activation():
    """Issue 25 #12: the authors' FLOPs count 5 more per output activation of every conv than complexity()."""
    from closekit.groundtruth.nds import authors_flops, conv_activations
    arch = "d1_1_1-w16_16_16"
    # stem + 2 block convs at 32x32; projection + 2 convs at 16x16 and at 8x8; 16 channels each
    acts = 16 * (3 * 32 * 32 + 3 * 16 * 16 + 3 * 8 * 8)
    assert conv_activations(RESNET, arch) == acts == 64512
    assert authors_flops(RESNET, arch) == RESNET.complexity(arch)[1] + 5 * acts
    wide = "d2_2_2-w64_128_256"
    assert authors_flops(RESNET, wide) - RESNET.complexity(wide)[1] == 5 * conv_activations(RESNET, wide)
    assert conv_activations(RESNET, wide) > acts
