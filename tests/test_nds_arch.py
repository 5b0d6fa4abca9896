"""NDS ResNet / ResNeXt-A architectures: choice sets, counts, the three formats, sampling, mutation, bad input."""
from collections import OrderedDict

import pytest
import torch

from closekit import spaces
from closekit.spaces.nds_arch import RESNET, RESNEXTA, Configs

RESNET_DEPTHS = (1, 2, 3, 4, 6, 8, 12, 16, 24)
RESNET_WIDTHS = (16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256)


def test_choice_sets_and_counts():
    assert RESNET.choices == [RESNET_DEPTHS] * 3 + [RESNET_WIDTHS] * 3
    assert RESNEXTA.choices == [(1, 2, 4, 8, 16)] * 3 + [(16, 32, 64, 128, 256)] * 3 + [(0.25, 0.5, 1.0)] * 3 + \
        [(1, 2, 4)] * 3
    assert RESNET.count == len(Configs(RESNET)) == (9 * 12) ** 3 == 1_259_712
    assert RESNEXTA.count == len(Configs(RESNEXTA)) == (5 * 5 * 3 * 3) ** 3 == 11_390_625
    assert RESNET.max_depth - 1 == 23 and RESNEXTA.max_depth - 1 == 15     # block positions per stage


def test_lazy_enumeration_is_every_config_once():
    c = Configs(RESNET)
    assert c[0] == (1, 1, 1, 16, 16, 16) and c[-1] == (24, 24, 24, 256, 256, 256) and c[1] == (1, 1, 1, 16, 16, 24)
    small = RESNET.__class__("t", "res_basic_block", (("depths", "d", "ds", (1, 2)), ("widths", "w", "ws", (16, 32))))
    allc = list(Configs(small))
    assert len(allc) == len(set(allc)) == 64
    assert c[12345] == RESNET.coerce(c[12345]) and len(c[10:13]) == 3
    with pytest.raises(IndexError):
        c[len(c)]


# hand-written examples: the reference doc's genotype and the NNI tutorial records (net dicts)
GENOTYPE = ("OrderedDict([('depths.0', 12), ('depths.1', 12), ('depths.2', 16), ('widths.0', 24), "
            "('widths.1', 32), ('widths.2', 40)])")
RESNET_NET = {"block_type": "res_basic_block", "ds": [1, 12, 12, 12], "ss": [1, 1, 2, 2], "ws": [16, 24, 24, 40]}
RESNEXTA_NET = {"block_type": "res_bottleneck_block", "bot_muls": [0, .25, .25, .25], "ds": [1, 16, 1, 4],
                "num_gs": [1, 2, 1, 2], "ss": [1, 1, 2, 2], "ws": [16, 64, 128, 16]}


def test_round_trips_on_hand_written_examples():
    a = RESNET.parse(GENOTYPE)
    assert a == (12, 12, 16, 24, 32, 40) and RESNET.to_genotype(a) == GENOTYPE
    assert RESNET.to_str(a) == "d12_12_16-w24_32_40" and RESNET.parse("d12_12_16-w24_32_40") == a
    b = RESNET.from_net(RESNET_NET)
    assert b == (12, 12, 12, 24, 24, 40) and RESNET.to_net(b) == RESNET_NET
    x = RESNEXTA.from_net(RESNEXTA_NET)
    assert x == (16, 1, 4, 64, 128, 16, .25, .25, .25, 2, 1, 2)
    assert RESNEXTA.to_str(x) == "d16_1_4-w64_128_16-b0.25_0.25_0.25-g2_1_2"
    assert RESNEXTA.to_net(x) == {**RESNEXTA_NET, "bot_muls": [0.0, .25, .25, .25]}
    g = RESNEXTA.to_genotype(x)
    assert g.startswith("OrderedDict([('depths.0', 16)") and "('bot_muls.2', 0.25), ('num_groups.0', 2)" in g
    assert RESNEXTA.parse(g) == x == RESNEXTA.parse(str(OrderedDict(zip(RESNEXTA.keys, x))))
    # JSON integers where the float choice is meant (1 for 1.0) and a net dict as text
    assert RESNEXTA.parse(g.replace("('bot_muls.0', 0.25)", "('bot_muls.0', 1)"))[6] == 1.0
    import json
    assert spaces.get("nds-resnexta").parse(json.dumps(RESNEXTA_NET)) == x


@pytest.mark.parametrize("text, words", [
    ("d12_12_16-w24_32_41", "widths.2=41 is not one of 16, 24"),
    ("d12_12_5-w24_32_40", "depths.2=5 is not one of 1, 2, 3"),
    ("d12_12-w24_32_40", "group 'd12_12'"),
    ("w24_32_40-d12_12_16", "must be d<v0>_<v1>_<v2>"),
    ("d1_1_1", "1 '-'-separated groups, expected 2"),
    ("OrderedDict([('depths.0', 12)])", "lacks depths.1"),
    (GENOTYPE.replace("widths.2", "width.2"), "unknown key(s) width.2"),
    (GENOTYPE.replace("widths.2", "width.2"), "genotype lacks widths.2; has unknown key(s) width.2"),
    ("OrderedDict(nonsense", "is not OrderedDict"),
])
def test_bad_resnet_input_is_named_in_one_line(text, words):
    with pytest.raises(ValueError) as e:
        RESNET.parse(text)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_bad_net_dicts_are_named_in_one_line():
    for bad, words in (({**RESNEXTA_NET, "num_gs": [1, 3, 1, 2]}, "num_groups.0=3 is not one of 1, 2, 4"),
                       ({**RESNEXTA_NET, "bot_muls": [0, .3, .25, .25]}, "bot_muls.0=0.3"),
                       ({**RESNEXTA_NET, "ds": [1, 16, 1]}, "net ds=[1, 16, 1] must be a 4-entry list"),
                       ({**RESNEXTA_NET, "ws": [32, 64, 128, 16]}, "ws[0]=32 is not the CIFAR stem's 16"),
                       ({**RESNEXTA_NET, "block_type": "res_basic_block"}, "block_type 'res_basic_block'")):
        with pytest.raises(ValueError) as e:
            RESNEXTA.from_net(bad)
        assert words in str(e.value) and "\n" not in str(e.value)


def test_uniform_sampling_per_decision():
    g = torch.Generator().manual_seed(0)
    draws = [RESNEXTA.sample(g) for _ in range(3000)]
    for i, ch in enumerate(RESNEXTA.choices):
        counts = [sum(d[i] == c for d in draws) for c in ch]
        assert min(counts) > 0.8 * 3000 / len(ch) and max(counts) < 1.2 * 3000 / len(ch), (i, counts)


def test_mutate_changes_exactly_one_decision():
    g = torch.Generator().manual_seed(1)
    for space in (RESNET, RESNEXTA):
        for _ in range(200):
            a = space.sample(g)
            m = space.mutate(a, g)
            assert sum(x != y for x, y in zip(a, m)) == 1 and space.check(m) == m


def test_slots_mark_the_positions_each_stage_uses():
    space = spaces.get("nds-resnexta")
    s = space.slots("d1_16_4-w64_128_16-b0.25_0.5_1-g2_1_4")
    assert len(s) == 3 * 15 and list(s["cell"].unique()) == ["stage1", "stage2", "stage3"]
    assert s.groupby("cell")["live"].sum().tolist() == [0, 15, 3]
    assert s.loc[s["live"], "op"].unique().tolist() == ["w128 b0.5 g1", "w16 b1 g4"]
    assert (s["param"] == s["live"]).all() and s["label"].iloc[16] == "s2.p2"


def test_nds_files_form_one_code_family_outside_nb201s_code_version():
    from closekit import provenance
    nds = set(provenance.modules("nds-resnet"))
    assert nds == set(provenance.modules("nds-resnexta")) and {"spaces.nds", "spaces.nds_ops"} <= nds
    assert not nds & {"spaces.nb201", "spaces.nb201_arch"} and "spaces.base" in nds
    assert provenance.code_version("nds-resnet") == provenance.code_version("nds-resnexta") != \
        provenance.code_version("nb201")