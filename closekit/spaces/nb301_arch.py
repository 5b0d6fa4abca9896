"""The NAS-Bench-301 / DARTS cell space (Siems et al. 2020; Liu et al. 2019) as CLOSE §4.2 uses it.

An ``Arch`` is ``(normal, reduce)``, each the DARTS genotype list of 8 ``(op, from)`` pairs (pairs 2(k-2), 2(k-2)+1
feed node k = 2..5 from two distinct earlier nodes; 0, 1 are the cell's inputs). Formats: DARTS ``Genotype(...)``
(``to_str``), aw_nas ``normal_0=[(op, from, to), ...]`` (``to_awnas``), the NB301 ConfigSpace dict (``to_config``).
Canonical: a node's inputs sorted; relabelled nodes stay distinct (the NB301 data gives them other accuracies).
"""
import ast
import math
import numbers

from .common import one_line, randint, read_dict

OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "max_pool_3x3", "avg_pool_3x3",
       "skip_connect")                                  # aw_nas NB301SearchSpace.shared_primitives order
CONVS = OPS[:4]
CELLS = ("normal", "reduce")
NODES = (2, 3, 4, 5)
OFFSET = {2: 0, 3: 2, 4: 5, 5: 9}                       # ConfigSpace edge id = OFFSET[to] + from
CONCAT = [2, 3, 4, 5]
CS = "NetworkSelectorDatasetInfo:darts:"
_BAD = "bad NB301 architecture: "


def node_of(i):
    """Intermediate node fed by connection i (0..7)."""
    return 2 + i // 2


def pair(k):
    """The two connections feeding node k."""
    return slice(2 * k - 4, 2 * k - 2)


def check_cell(cell, name="cell"):
    """A validated tuple of 8 (op, from) pairs; one-line ValueError naming the bad entry."""
    try:
        pairs = [tuple(p) for p in cell]
    except TypeError:
        raise ValueError(f"{_BAD}{name} must be a list of 8 (op, from) pairs, got {one_line(cell)}") from None
    if len(pairs) != 8:
        raise ValueError(f"{_BAD}{name} has {len(pairs)} (op, from) pairs, expected 8 (2 per node 2..5)")
    for i, p in enumerate(pairs):
        k = node_of(i)
        if len(p) != 2:
            raise ValueError(f"{_BAD}{name} entry {one_line(p)} of node {k} is not an (op, from) pair")
        if p[0] not in OPS:
            raise ValueError(f"{_BAD}unknown op {p[0]!r} in {name} node {k} (ops: {', '.join(OPS)})")
        if not isinstance(p[1], numbers.Integral) or not 0 <= p[1] < k:
            raise ValueError(f"{_BAD}input {p[1]!r} of {name} node {k} must be an earlier node 0..{k - 1}")
    for k in NODES:
        a, b = (src for _, src in pairs[pair(k)])
        if a == b:
            raise ValueError(f"{_BAD}{name} node {k} takes input {a} twice (its two inputs must differ)")
    return tuple((op, int(src)) for op, src in pairs)


def coerce(x):
    """An Arch from any of the three formats (string or dict), a DARTS genotype object or (normal, reduce)."""
    if isinstance(x, str):
        return parse(x)
    if isinstance(x, dict):
        return from_config(x)
    if hasattr(x, "normal") and hasattr(x, "reduce"):
        x = (x.normal, x.reduce)
    try:
        normal, reduce = x
    except (TypeError, ValueError):
        raise ValueError(f"{_BAD}expected a genotype string, a ConfigSpace dict or (normal, reduce), got "
                         f"{one_line(x)}") from None
    return check_cell(normal, "normal"), check_cell(reduce, "reduce")


def _value(node, text):
    """A literal (list, tuple, int, str) or range(a, b) from an ast node."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "range":
        return list(range(*[ast.literal_eval(a) for a in node.args]))
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"{_BAD}{ast.get_source_segment(text, node)!r} is not a literal") from None


def parse(s):
    """DARTS Genotype string, aw_nas genotype string or ConfigSpace dict text (JSON / Python) -> Arch."""
    if not isinstance(s, str):
        raise ValueError(f"{_BAD}expected a str, got {type(s).__name__}")
    text = s.strip()
    if text.startswith("{"):
        return from_config(read_dict(text, f"{_BAD}ConfigSpace "))
    head, paren, _ = text.partition("(")
    call = text if paren and head.isidentifier() and text.endswith(")") else f"f({text})"
    try:
        tree = ast.parse(call, mode="eval").body
    except SyntaxError as e:
        bad = call[max((e.offset or 1) - 1, 0):][:30]
        raise ValueError(f"{_BAD}cannot read {s[:60]!r}: syntax error near {bad!r}") from None
    if not isinstance(tree, ast.Call) or tree.args or not tree.keywords or any(k.arg is None for k in tree.keywords):
        raise ValueError(f"{_BAD}expected 'Genotype(normal=[...], ...)' or 'normal_0=[...], reduce_1=[...]' (no "
                         f"'**'), got {s[:60]!r}")
    kw = {k.arg: _value(k.value, call) for k in tree.keywords}
    awnas = any(k.startswith(("normal_0", "reduce_1")) for k in kw)
    cells = ("normal_0", "reduce_1") if awnas else ("normal", "reduce")
    concats = [f"{c}_concat" for c in cells]
    known = {*cells, *concats}
    extra, missing = sorted(set(kw) - known), [c for c in cells if c not in kw]
    if extra:
        raise ValueError(f"{_BAD}unknown key {extra[0]!r} (a {'aw_nas' if awnas else 'DARTS'} genotype has "
                         f"{', '.join(sorted(known))})")
    if missing:
        raise ValueError(f"{_BAD}genotype lacks {missing[0]!r}")
    for key in concats:
        if key in kw and list(kw[key]) != CONCAT:
            raise ValueError(f"{_BAD}{key}={list(kw[key])} must be {CONCAT} (NB301 concatenates nodes 2..5)")
    return coerce([_from_triples(kw[c], c) for c in cells] if awnas else [kw[c] for c in cells])


def _from_triples(conns, name):
    """aw_nas (op, from, to) triples -> DARTS (op, from) pairs in node order (the order within a node kept)."""
    try:
        triples = [tuple(t) for t in conns]
    except TypeError:
        raise ValueError(f"{_BAD}{name} must be a list of (op, from, to) triples") from None
    bad = next((t for t in triples if len(t) != 3 or t[2] not in NODES), None)
    if bad is not None:
        raise ValueError(f"{_BAD}{name} entry {one_line(bad)} is not (op, from, to) with to in 2..5")
    for k in NODES:
        n = sum(t[2] == k for t in triples)
        if n != 2:
            raise ValueError(f"{_BAD}{name} node {k} has {n} incoming connections, expected 2")
    return [(op, src) for k in NODES for op, src, to in triples if to == k]


def from_config(d):
    """NB301 ConfigSpace dict -> Arch (other hyper-parameters in the dict are ignored)."""
    if not isinstance(d, dict):
        raise ValueError(f"{_BAD}expected a ConfigSpace dict, got {type(d).__name__}")
    cells = []
    for c in CELLS:
        pairs = []
        for k in NODES:
            key, srcs = f"{CS}inputs_node_{c}_{k}", (0, 1)                  # node 2 reads both inputs: no key
            if k > 2:
                if key not in d:
                    raise ValueError(f"{_BAD}ConfigSpace dict lacks {key!r}")
                srcs = str(d[key]).split("_")
                if len(srcs) != 2 or not all(p.isdigit() for p in srcs) or not int(srcs[0]) < int(srcs[1]) < k:
                    raise ValueError(f"{_BAD}{key}={d[key]!r} must be 'a_b' with a < b < {k}")
            for src in map(int, srcs):
                edge = f"{CS}edge_{c}_{OFFSET[k] + src}"
                if edge not in d:
                    raise ValueError(f"{_BAD}ConfigSpace dict lacks {edge} (node {k} input {src})")
                pairs.append((d[edge], src))
        cells.append(pairs)
    arch = coerce(cells)
    selected = to_config(arch)                                      # the edge keys its inputs_node keys select
    unused = [key for key in d if str(key).startswith(f"{CS}edge_") and key not in selected]
    if unused:
        raise ValueError(f"{_BAD}ConfigSpace key {unused[0]} is set but no inputs_node key selects it")
    return arch


def _cell_str(cell, to=False):
    return "[" + ", ".join(f"('{op}', {src}, {node_of(i)})" if to else f"('{op}', {src})"
                           for i, (op, src) in enumerate(cell)) + "]"


def to_str(arch):
    """Arch -> DARTS Genotype string (what str() of a DARTS Genotype namedtuple prints)."""
    n, r = coerce(arch)
    return f"Genotype(normal={_cell_str(n)}, normal_concat={CONCAT}, reduce={_cell_str(r)}, reduce_concat={CONCAT})"


def to_awnas(arch):
    """Arch -> aw_nas genotype string (as in nb301_archs.yaml)."""
    n, r = coerce(arch)
    return (f"normal_0={_cell_str(n, True)}, reduce_1={_cell_str(r, True)}, normal_0_concat={CONCAT}, "
            f"reduce_1_concat={CONCAT}")


def to_config(arch):
    """Arch -> NB301 ConfigSpace dict of the architecture keys (nasbench301 convert_genotype_to_config)."""
    out = {}
    for c, cell in zip(CELLS, coerce(arch)):
        for i, (op, src) in enumerate(cell):
            out[f"{CS}edge_{c}_{OFFSET[node_of(i)] + src}"] = op
        for k in NODES[1:]:
            out[f"{CS}inputs_node_{c}_{k}"] = "_".join(map(str, sorted(src for _, src in cell[pair(k)])))
    return out


def canonical(arch):
    """Each node's two (op, from) pairs sorted by input node (see the module docstring)."""
    return tuple(tuple(p for k in NODES for p in sorted(cell[pair(k)], key=lambda p: p[1])) for cell in coerce(arch))


def num_cells():
    """Canonical cells per cell type: prod over nodes of C(k, 2) input pairs x 7^2 ops."""
    return math.prod(math.comb(k, 2) * len(OPS) ** 2 for k in NODES)


def sample(gen):
    """One genotype as NB301Rollout.random_sample_arch: per node two distinct inputs and two ops, uniform."""
    cells = []
    for _ in CELLS:
        cell = []
        for k in NODES:
            a, b = randint(k, gen), randint(k - 1, gen)
            b += b >= a
            cell += [(OPS[randint(len(OPS), gen)], a), (OPS[randint(len(OPS), gen)], b)]
        cells.append(tuple(cell))
    return tuple(cells)


def mutate(arch, gen):
    """One decision changed (canonical result): an op, or with probability 1/2 an input of a node 3..5."""
    cells = [list(c) for c in canonical(arch)]
    c = randint(2, gen)
    if randint(2, gen):
        i = 2 + randint(6, gen)
        op, src = cells[c][i]
        free = [n for n in range(node_of(i)) if n not in (src, cells[c][i ^ 1][1])]
        cells[c][i] = (op, free[randint(len(free), gen)])
    else:
        i = randint(8, gen)
        op, src = cells[c][i]
        new = randint(len(OPS) - 1, gen)
        cells[c][i] = (OPS[new + (new >= OPS.index(op))], src)
    return canonical(cells)
