"""NB201 cell space: golden counts, string/matrix round trips, isomorphism, validity, sampling."""
import time
from collections import Counter

import pytest
import torch

from closekit.spaces.nb201_arch import (
    EDGES, OPS, NB201Archs, coerce, from_matrix, is_valid, iso_key, live_edges, parse, to_matrix, to_str,
)

EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.fixture(scope="module")
def space():
    return NB201Archs()


# ---- golden numbers (measured on the official NAS-Bench-201 data) ----

def test_num_cells(space):
    assert space.num_archs == len(set(space.all)) == 15_625
    assert space.all == sorted(space.all)


def test_num_iso_classes(space):
    assert space.num_iso == 6_466
    assert len({iso_key(a) for a in space.all}) == 6_466


def test_num_valid_representatives(space):
    assert space.num_valid == 6_321


def test_class_sizes_sum(space):
    assert sum(len(space.members(r)) for r in space.representatives) == 15_625


def test_singleton_classes(space):
    sizes = Counter(iso_key(a) for a in space.all)
    assert sum(1 for n in sizes.values() if n == 1) == 5_116


def test_largest_class(space):
    assert max(Counter(iso_key(a) for a in space.all).values()) == 275


def test_enumeration_fast():
    t = time.perf_counter()
    fresh = NB201Archs()
    fresh.valid, fresh.canonical(EXAMPLE)
    assert time.perf_counter() - t < 2.0


# ---- strings, tuples, matrices ----

def test_parse_example():
    assert parse(EXAMPLE) == (3, 3, 4, 1, 3, 1)
    assert to_str((3, 3, 4, 1, 3, 1)) == EXAMPLE
    assert parse(ALL_NONE) == (0,) * 6
    assert parse("nor_conv_1x1~0+none~0|skip_connect~1||+none~0|none~1|none~2") == (2, 0, 1, 0, 0, 0)


def test_round_trips_all(space):
    for a in space.all:
        s = to_str(a)
        assert s.startswith("|") and s.endswith("|") and s.count("+") == 2
        assert parse(s) == a and to_str(parse(s)) == s
        m = to_matrix(a)
        assert all(m[j][i] == 0 for j in range(4) for i in range(j, 4))
        assert from_matrix(m) == a and to_str(from_matrix(m)) == s


def test_matrix_layout():
    m = to_matrix(EXAMPLE)
    for (j, i), op in zip(EDGES, parse(EXAMPLE)):
        assert m[j][i] == op
    assert m[3][2] == OPS.index("skip_connect") and m[2][1] == OPS.index("avg_pool_3x3")


@pytest.mark.parametrize("bad, token", [
    ("|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "'conv_3x3~0'"),
    ("|none~2|+|none~0|none~1|+|none~0|none~1|none~2|", "'none~2'"),
    ("|none~0|+|none~0|none~3|+|none~0|none~1|none~2|", "'none~3'"),
    ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "'none~0'"),
    ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "'none0'"),
    ("|none~0~1|+|none~0|none~1|+|none~0|none~1|none~2|", "'none~0~1'"),
    ("|none~x|+|none~0|none~1|+|none~0|none~1|none~2|", "'none~x'"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "'|none~0|'"),
    ("|none~0|+|none~0|none~1|", "3 '+'-separated"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "3 '+'-separated"),
    ("|no\nne~0|+|none~0|none~1|+|none~0|none~1|none~2|", "'no\\nne~0'"),
    ("", "3 '+'-separated"),
    (42, "expected a str"),
])
def test_parse_errors_one_line(bad, token):
    with pytest.raises(ValueError) as e:
        parse(bad)
    msg = str(e.value)
    assert msg.startswith("bad NB201 architecture string:") and "\n" not in msg
    assert token in msg


@pytest.mark.parametrize("bad, words", [
    ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "duplicate input 0 in token 'none~0' of node 2"),
    ("|none~0~1|+|none~0|none~1|+|none~0|none~1|none~2|", "token 'none~0~1' of node 1 is not 'op~input' (needs exa"),
    ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "token 'none0' of node 1 is not 'op~input' (needs exactly"),
    ("|none~0|+|none~0|none~3|+|none~0|none~1|none~2|", "input '3' in token 'none~3' of node 2 (expected 0..1)"),
])
def test_parse_errors_say_what_is_wrong_with_the_token(bad, words):
    with pytest.raises(ValueError) as e:
        parse(bad)
    assert words in str(e.value)


def test_unknown_op_message_lists_ops():
    with pytest.raises(ValueError, match=r"unknown op 'conv_3x3' in token 'conv_3x3~0' \(ops: none, skip_connect"):
        parse("|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")


@pytest.mark.parametrize("bad", [[0] * 5, [0] * 7, [5, 0, 0, 0, 0, 0], [-1, 0, 0, 0, 0, 0], [0.5] * 6, 3, None])
def test_coerce_errors_one_line(bad):
    with pytest.raises(ValueError) as e:
        coerce(bad)
    assert "\n" not in str(e.value)


def test_coerce_accepts_sequences():
    assert coerce([3, 3, 4, 1, 3, 1]) == coerce(torch.tensor([3, 3, 4, 1, 3, 1])) == coerce(EXAMPLE)
    assert isinstance(coerce([1] * 6), tuple)


def test_from_matrix_errors():
    with pytest.raises(ValueError, match="4x4"):
        from_matrix([[0] * 3] * 3)
    upper = to_matrix(EXAMPLE)
    upper[0][2] = 1
    with pytest.raises(ValueError, match="diagonal"):
        from_matrix(upper)
    diag = to_matrix(EXAMPLE)
    diag[1][1] = 3
    with pytest.raises(ValueError, match="diagonal"):
        from_matrix(diag)
    with pytest.raises(ValueError):
        from_matrix([[0, 0, 0, 0], [7, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


# ---- isomorphism ----

ISO_PAIRS = [
    # conv on the single 0->1->2->3 chain: via the 1->2 edge vs via the 0->1 edge
    ("|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|",
     "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"),
    # ... or via 0->2 with node 1 unused
    ("|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|",
     "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|"),
    # parallel edges into the output commute (node 1 == input via skip)
    ("|skip_connect~0|+|none~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|",
     "|skip_connect~0|+|none~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|none~2|"),
    # node 1 dead (none~0): convs out of it are dead
    ("|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|skip_connect~2|",
     "|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|skip_connect~2|"),
    # node 2 does not reach the output (none~2): convs into it are dead
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|",
     "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"),
]
NON_ISO_PAIRS = [
    ("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|",   # conv then pool
     "|avg_pool_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|"),  # pool then conv
    ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|",
     "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"),
    ("|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|",   # conv(x)
     "|skip_connect~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"),  # conv(x) + x
    # NB201 convention: the key keeps one '#' per zeroed in-edge of a node, so conv(x) straight
    # into the output (two zeroed in-edges) differs from conv(x) routed through node 2 (three)
    ("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|",
     "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|"),
]


@pytest.mark.parametrize("a, b", ISO_PAIRS)
def test_isomorphic_pairs(space, a, b):
    assert iso_key(a) == iso_key(b)
    assert space.canonical(a) == space.canonical(b)
    assert parse(b) in space.members(a)


@pytest.mark.parametrize("a, b", NON_ISO_PAIRS)
def test_non_isomorphic_pairs(space, a, b):
    assert iso_key(a) != iso_key(b)
    assert space.canonical(a) != space.canonical(b)


def test_iso_key_format():
    assert iso_key(ISO_PAIRS[0][0]) == "#+#+#+(0)@nor_conv_3x3"
    assert iso_key(ALL_NONE) == "#+#+#"


def test_dead_edges_prefer_none(space):
    assert space.canonical(ISO_PAIRS[4][0]) == parse(ISO_PAIRS[4][1])
    assert space.canonical_str(ISO_PAIRS[3][0]) == ISO_PAIRS[3][1]


def test_representatives_are_class_minima(space):
    reps = space.representatives
    assert reps == sorted(reps) and len(set(reps)) == len(reps)
    for r in reps:
        members = space.members(r)
        assert min(members) == r == space.canonical(r) and members == sorted(members)
    for a in space.all[::97]:
        assert space.canonical(a) in space.members(a) and a in space.members(a)
        assert space.canonical(to_str(a)) == space.canonical(a)


def test_validity_is_class_invariant(space):
    for r in space.representatives:
        assert len({is_valid(m) for m in space.members(r)}) == 1


# ---- live edges and validity ----

@pytest.mark.parametrize("arch, live, valid", [
    (ALL_NONE, (False,) * 6, False),
    ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", (False,) * 6, False),  # no path to output
    ("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
     (True, False, True, False, False, True), True),
    ("|none~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",  # conv out of dead node 1
     (False, False, False, True, False, False), False),
    ("|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|none~2|",  # convs cut from output
     (False, False, False, True, False, False), False),
    ("|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|skip_connect~1|avg_pool_3x3~2|",
     (True,) * 6, False),  # live but conv-free
    ("|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|", (False, False, False, True, False, False), True),
    (EXAMPLE, (True,) * 6, True),
])
def test_live_edges_and_valid(arch, live, valid):
    assert live_edges(arch) == live
    assert is_valid(arch) is valid


def test_valid_list(space):
    assert all(is_valid(a) for a in space.valid)
    assert set(space.valid) == {r for r in space.representatives if is_valid(r)}


# ---- sampling ----

def test_sample_reproducible_and_valid(space):
    g = torch.Generator().manual_seed(123)
    state = g.get_state()
    first = [space.sample(g) for _ in range(50)]
    g.set_state(state)
    assert [space.sample(g) for _ in range(50)] == first
    valid = set(space.valid)
    assert all(a in valid for a in first) and len(set(first)) > 40
    g.set_state(state)  # exactly one randint per draw
    assert space.sample(g) == space.valid[int(torch.randint(space.num_valid, (1,), generator=torch.Generator().manual_seed(123)))]


def test_sample_list(space):
    picks = space.sample_list(1000, seed=0)
    assert len(picks) == len(set(picks)) == 1000
    assert set(picks) <= set(space.valid)
    assert space.sample_list(1000, seed=0) == picks != space.sample_list(1000, seed=1)
    assert sorted(space.sample_list(space.num_valid, seed=3)) == space.valid
    with pytest.raises(ValueError):
        space.sample_list(space.num_valid + 1, seed=0)
