"""NB301 genotypes: the three formats on hand-written genotypes (DARTS-V2 included), canonical form, counts,
sampling as the reference samples, mutation, bad input naming the bad token."""
import itertools
import json
from collections import Counter

import pytest
import torch

from closekit.spaces import get
from closekit.spaces import nb301_arch as A

V2_NORMAL = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
             ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)]
V2_REDUCE = [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
             ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)]
V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
      "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
      "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
      "('max_pool_3x3', 1), ('max_pool_3x3', 0), "
      "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
# aw_nas string of the same genotype as the reference's arch lists write it (to-node third, concat as tuples)
V2_AWNAS = ("normal_0=[('sep_conv_3x3', 0, 2), ('sep_conv_3x3', 1, 2), ('sep_conv_3x3', 0, 3), ('sep_conv_3x3', 1, 3), "
            "('sep_conv_3x3', 1, 4), ('skip_connect', 0, 4), ('skip_connect', 0, 5), ('dil_conv_3x3', 2, 5)],"
            "normal_0_concat=(2, 3, 4, 5),reduce_1=[('max_pool_3x3', 0, 2), ('max_pool_3x3', 1, 2), "
            "('skip_connect', 2, 3), ('max_pool_3x3', 1, 3), ('max_pool_3x3', 0, 4), ('skip_connect', 2, 4), "
            "('skip_connect', 2, 5), ('max_pool_3x3', 1, 5)],reduce_1_concat=(2, 3, 4, 5)")
P = "NetworkSelectorDatasetInfo:darts:"
# ConfigSpace dict by hand: node k owns edges offset(k) + from, offsets 0, 2, 5, 9
V2_CONFIG = {P + "edge_normal_0": "sep_conv_3x3", P + "edge_normal_1": "sep_conv_3x3",
             P + "edge_normal_2": "sep_conv_3x3", P + "edge_normal_3": "sep_conv_3x3",      # node 3 <- 0, 1
             P + "edge_normal_6": "sep_conv_3x3", P + "edge_normal_5": "skip_connect",      # node 4 <- 1, 0
             P + "edge_normal_9": "skip_connect", P + "edge_normal_11": "dil_conv_3x3",     # node 5 <- 0, 2
             P + "inputs_node_normal_3": "0_1", P + "inputs_node_normal_4": "0_1", P + "inputs_node_normal_5": "0_2",
             P + "edge_reduce_0": "max_pool_3x3", P + "edge_reduce_1": "max_pool_3x3",
             P + "edge_reduce_4": "skip_connect", P + "edge_reduce_3": "max_pool_3x3",      # node 3 <- 2, 1
             P + "edge_reduce_5": "max_pool_3x3", P + "edge_reduce_7": "skip_connect",      # node 4 <- 0, 2
             P + "edge_reduce_11": "skip_connect", P + "edge_reduce_10": "max_pool_3x3",    # node 5 <- 2, 1
             P + "inputs_node_reduce_3": "1_2", P + "inputs_node_reduce_4": "0_2", P + "inputs_node_reduce_5": "1_2"}
# the canonical form sorts each node's pair by input: reduce node 3 (2, 1) -> (1, 2), node 5 likewise, normal node 4
V2_CANON = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 1), "
            "('skip_connect', 2), ('max_pool_3x3', 0), "
            "('skip_connect', 2), ('max_pool_3x3', 1), ('skip_connect', 2)], reduce_concat=[2, 3, 4, 5])")
SPACE = get("nb301")


def test_darts_v2_reads_in_all_three_formats():
    arch = (tuple(V2_NORMAL), tuple(V2_REDUCE))
    assert A.parse(V2) == arch and A.to_str(arch) == V2
    assert A.parse(V2_AWNAS) == arch
    assert A.to_config(arch) == V2_CONFIG
    assert A.from_config(V2_CONFIG) == A.canonical(arch)     # ConfigSpace keeps no order within a node
    assert A.parse(json.dumps(V2_CONFIG)) == A.canonical(arch) == A.parse(V2_CANON)
    assert A.to_str(A.canonical(arch)) == V2_CANON == SPACE.canonical_str(V2_AWNAS) == SPACE.canonical_str(V2_CONFIG)


def test_format_variants_and_round_trips():
    rng = V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    assert A.parse(rng) == A.parse(V2)
    awnas = A.to_awnas(A.parse(V2))
    assert awnas.startswith("normal_0=[('sep_conv_3x3', 0, 2), ") and A.parse(awnas) == A.parse(V2)
    # a results record's config holds other hyper-parameters too; they are ignored
    assert A.from_config({**V2_CONFIG, P + "init_channels": 50, "OptimizerSelector:optimizer": "sgd"}) == \
        A.canonical(A.parse(V2))
    g = torch.Generator().manual_seed(1)
    for _ in range(50):
        a = A.sample(g)
        assert A.parse(A.to_str(a)) == a == A.parse(A.to_awnas(a))
        assert A.from_config(A.to_config(a)) == A.canonical(a) == A.canonical(A.canonical(a))


def test_counts_per_cell():
    # input pairs: C(2,2) * C(3,2) * C(4,2) * C(5,2) = 1 * 3 * 6 * 10 = 180; ops: 7 per connection, 8 connections
    assert A.num_cells() == 1 * 3 * 6 * 10 * 7 ** 8 == 1_037_664_180
    # the ConfigSpace input choices enumerate the same 180 pairs (keys "a_b" with a < b < k)
    pairs = [["_".join(map(str, p)) for p in itertools.combinations(range(k), 2)] for k in A.NODES]
    assert [len(p) for p in pairs] == [1, 3, 6, 10] and pairs[1] == ["0_1", "0_2", "1_2"]


def test_canonical_identifies_input_order_only():
    arch = A.parse(V2)
    swapped = [list(c) for c in arch]
    swapped[0][0], swapped[0][1] = swapped[0][1], swapped[0][0]
    assert A.canonical(swapped) == A.canonical(arch)
    relabel = [list(c) for c in A.canonical(arch)]                  # swap the ops of a node: another genotype
    relabel[0][4], relabel[0][5] = (relabel[0][5][0], 0), (relabel[0][4][0], 1)
    assert A.canonical(relabel) != A.canonical(arch)


def test_sampling_as_the_reference():
    g = torch.Generator().manual_seed(0)
    archs = [A.sample(g) for _ in range(4000)]
    first = Counter(c[4][1] for a in archs for c in a)             # node 4's first input: uniform over 0..3
    pair = Counter(tuple(sorted((c[6][1], c[7][1]))) for a in archs for c in a)   # node 5's input pair
    ops = Counter(o for a in archs for c in a for o, _ in c)
    assert set(first) == {0, 1, 2, 3} and max(first.values()) / min(first.values()) < 1.15
    assert len(pair) == 10 and max(pair.values()) / min(pair.values()) < 1.3
    assert set(ops) == set(A.OPS) and max(ops.values()) / min(ops.values()) < 1.1
    assert all(c[2 * i][1] != c[2 * i + 1][1] for a in archs for c in a for i in range(4))
    assert all(SPACE.canonical_str(a) == SPACE.canonical_str(SPACE.to_str(a)) for a in archs[:20])


def test_mutate_changes_one_decision():
    g = torch.Generator().manual_seed(0)
    for a in SPACE.sample_list(30, 0):
        m = A.mutate(a, g)
        diff = [(c, i) for c in range(2) for i in range(8) if a[c][i] != m[c][i]]
        assert m == A.canonical(m) != a
        # one op changed, or one input changed (which may re-sort its node's pair)
        assert len(diff) == 1 or (len(diff) == 2 and diff[0][1] // 2 == diff[1][1] // 2)


@pytest.mark.parametrize("text, token", [
    (V2.replace("dil_conv_3x3", "conv_7x7"), "unknown op 'conv_7x7' in normal node 5"),
    (V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "input 5 of normal node 5"),
    (V2.replace("('sep_conv_3x3', 1), ('sep_conv_3x3', 0)", "('sep_conv_3x3', 0), ('sep_conv_3x3', 0)", 1),
     "normal node 2 takes input 0 twice"),
    (V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3]"), "normal_concat=[2, 3]"),
    (V2.replace(", ('max_pool_3x3', 1)], reduce_concat", "], reduce_concat"), "reduce has 7"),
    (V2.replace("normal=", "normall="), "unknown key 'normall'"),
    (V2[:-5], "syntax error"),
    (V2_AWNAS.replace("('dil_conv_3x3', 2, 5)", "('dil_conv_3x3', 2, 4)"), "normal_0 node 4 has 3"),
    (V2_AWNAS.replace("('dil_conv_3x3', 2, 5)", "('dil_conv_3x3', 2, 6)"),
     "normal_0 entry ('dil_conv_3x3', 2, 6) is not (op, from, to) with to in 2..5"),
    (V2_AWNAS.replace("('dil_conv_3x3', 2, 5)", "('dil_conv_3x3', 2)"),
     "normal_0 entry ('dil_conv_3x3', 2) is not (op, from, to)"),
    ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "syntax error"),
])
def test_bad_strings_name_the_bad_token(text, token):
    with pytest.raises(ValueError, match="bad NB301") as e:
        A.parse(text)
    assert token in str(e.value) and "\n" not in str(e.value)


def test_bad_config_dicts():
    no_inputs = {k: v for k, v in V2_CONFIG.items() if not k.endswith("inputs_node_reduce_4")}
    with pytest.raises(ValueError, match="lacks 'NetworkSelectorDatasetInfo:darts:inputs_node_reduce_4'"):
        A.from_config(no_inputs)
    with pytest.raises(ValueError, match="edge_normal_12 is set"):
        A.from_config({**V2_CONFIG, P + "edge_normal_12": "skip_connect"})
    with pytest.raises(ValueError, match="inputs_node_normal_5='0_7'"):
        A.from_config({**V2_CONFIG, P + "inputs_node_normal_5": "0_7"})
