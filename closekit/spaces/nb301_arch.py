"""The NAS-Bench-301 / DARTS cell space (Siems et al. 2020; Liu et al. 2019) as CLOSE §4.2 uses it.

A genotype is a normal and a reduce cell. Each cell has 2 input nodes (0, 1: the outputs of the previous two cells)
and 4 intermediate nodes 2..5; node k takes two distinct inputs from nodes 0..k-1, applies one of the 7 DARTS ops
(no ``none``) to each and sums them; the cell output is the concat of nodes 2..5. An ``Arch`` is
``(normal, reduce)``, each a tuple of 8 ``(op, from)`` pairs in node order (pairs 2(k-2), 2(k-2)+1 feed node k),
exactly the DARTS genotype lists. Per cell there are 1*3*6*10 input-pair choices x 7^8 op choices.

Three formats are read and written:
  * DARTS ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=...)``
    (``to_str``, the kit's string);
  * aw_nas ``normal_0=[('sep_conv_3x3', 0, 2), ...], reduce_1=[...], normal_0_concat=[2, 3, 4, 5], ...``
    (the reference's ``nb301_archs.yaml`` entries; ``to_awnas``);
  * the NB301 ConfigSpace dict (``NetworkSelectorDatasetInfo:darts:edge_{cell}_{e}`` = op with
    e = offset(k) + from, offsets 0, 2, 5, 9, and ``...:inputs_node_{cell}_{k}`` = "a_b" for k = 3..5; the
    surrogate's input, ``to_config``).

Canonical form: the two inputs of a node are summed, so their order is not part of the architecture; the canonical
genotype lists them by ascending input node (the order of the ConfigSpace "a_b" keys). Nothing else is identified:
relabelling intermediate nodes only permutes the channels of the cell's concat output (an equivalent network up to
the next cell's 1x1 weights), but the NB301 surrogate and training data treat such relabellings as different
configurations and give them different accuracies, so merging them would merge distinct ground-truth keys.
"""
import ast
import json
import operator

import torch

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


def _line(x):
    return " ".join(repr(x).split())[:200]


def check_cell(cell, name="cell"):
    """A validated tuple of 8 (op, from) pairs; one-line ValueError naming the bad entry."""
    try:
        pairs = [tuple(p) for p in cell]
    except TypeError:
        raise ValueError(f"{_BAD}{name} must be a list of 8 (op, from) pairs, got {_line(cell)}") from None
    if len(pairs) != 8:
        raise ValueError(f"{_BAD}{name} has {len(pairs)} (op, from) pairs, expected 8 (2 per node 2..5)")
    out = []
    for i, p in enumerate(pairs):
        k = node_of(i)
        if len(p) != 2:
            raise ValueError(f"{_BAD}{name} entry {_line(p)} of node {k} is not an (op, from) pair")
        op, src = p
        if op not in OPS:
            raise ValueError(f"{_BAD}unknown op {op!r} in {name} node {k} (ops: {', '.join(OPS)})")
        try:
            src = operator.index(src)
        except TypeError:
            raise ValueError(f"{_BAD}input {src!r} of {name} node {k} is not an int") from None
        if not 0 <= src < k:
            raise ValueError(f"{_BAD}input {src} of {name} node {k} must be an earlier node 0..{k - 1}")
        out.append((op, src))
    for k in NODES:
        a, b = out[2 * (k - 2)][1], out[2 * (k - 2) + 1][1]
        if a == b:
            raise ValueError(f"{_BAD}{name} node {k} takes input {a} twice (its two inputs must differ)")
    return tuple(out)


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
                         f"{_line(x)}") from None
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
        try:
            d = json.loads(text)
        except json.JSONDecodeError:
            try:
                d = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ValueError(f"{_BAD}ConfigSpace dict text {text[:60]!r} is neither JSON nor a Python dict") \
                    from None
        return from_config(d)
    head, paren, _ = text.partition("(")
    call = text if paren and head.isidentifier() and text.endswith(")") else f"f({text})"
    try:
        tree = ast.parse(call, mode="eval").body
    except SyntaxError as e:
        bad = call[max((e.offset or 1) - 1, 0):][:30]
        raise ValueError(f"{_BAD}cannot read {s[:60]!r}: syntax error near {bad!r}") from None
    if not isinstance(tree, ast.Call) or tree.args or not tree.keywords:
        raise ValueError(f"{_BAD}expected 'Genotype(normal=[...], ...)' or 'normal_0=[...], reduce_1=[...]', got "
                         f"{s[:60]!r}")
    kw = {}
    for k in tree.keywords:
        if k.arg is None:
            raise ValueError(f"{_BAD}'**' is not allowed in {s[:60]!r}")
        kw[k.arg] = _value(k.value, call)
    awnas = any(k.startswith(("normal_0", "reduce_1")) for k in kw)
    cells = ("normal_0", "reduce_1") if awnas else ("normal", "reduce")
    known = {*cells, *(f"{c}_concat" for c in cells)}
    extra = sorted(set(kw) - known)
    if extra:
        raise ValueError(f"{_BAD}unknown key {extra[0]!r} (a {'aw_nas' if awnas else 'DARTS'} genotype has "
                         f"{', '.join(sorted(known))})")
    missing = [c for c in cells if c not in kw]
    if missing:
        raise ValueError(f"{_BAD}genotype lacks {missing[0]!r}")
    cells = tuple(_from_triples(kw[c], c) for c in cells) if awnas else (kw["normal"], kw["reduce"])
    for key in known:
        if key.endswith("concat") and key in kw and list(kw[key]) != CONCAT:
            raise ValueError(f"{_BAD}{key}={list(kw[key])} must be {CONCAT} (NB301 concatenates nodes 2..5)")
    return coerce(cells)


def _from_triples(conns, name):
    """aw_nas (op, from, to) triples -> DARTS (op, from) pairs in node order (the order within a node kept)."""
    try:
        triples = [tuple(t) for t in conns]
    except TypeError:
        raise ValueError(f"{_BAD}{name} must be a list of (op, from, to) triples") from None
    bad = next((t for t in triples if len(t) != 3 or t[2] not in NODES), None)
    if bad is not None:
        raise ValueError(f"{_BAD}{name} entry {_line(bad)} is not (op, from, to) with to in 2..5")
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
        edges = {}
        for key, v in d.items():
            if isinstance(key, str) and key.startswith(f"{CS}edge_{c}_"):
                e = key.rsplit("_", 1)[1]
                if not e.isdigit() or int(e) > 13:
                    raise ValueError(f"{_BAD}ConfigSpace key {key!r}: edge id must be 0..13")
                edges[int(e)] = v
        pairs = []
        for k in NODES:
            if k == 2:
                srcs = (0, 1)
            else:
                key = f"{CS}inputs_node_{c}_{k}"
                if key not in d:
                    raise ValueError(f"{_BAD}ConfigSpace dict lacks {key!r}")
                parts = str(d[key]).split("_")
                if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[0]) >= int(parts[1]) \
                        or int(parts[1]) >= k:
                    raise ValueError(f"{_BAD}{key}={d[key]!r} must be 'a_b' with a < b < {k}")
                srcs = tuple(int(p) for p in parts)
            for src in srcs:
                e = OFFSET[k] + src
                if e not in edges:
                    raise ValueError(f"{_BAD}ConfigSpace dict lacks {CS}edge_{c}_{e} (node {k} input {src})")
                pairs.append((edges.pop(e), src))
        if edges:
            e = min(edges)
            raise ValueError(f"{_BAD}ConfigSpace key {CS}edge_{c}_{e} is set but its node's inputs_node key does "
                             "not select it")
        cells.append(pairs)
    return coerce(cells)


def _cell_str(cell, to=False):
    return "[" + ", ".join(f"('{op}', {src}, {node_of(i)})" if to else f"('{op}', {src})"
                           for i, (op, src) in enumerate(cell)) + "]"


def to_str(arch):
    """Arch -> DARTS Genotype string (what str() of a DARTS Genotype namedtuple prints)."""
    n, r = coerce(arch)
    return (f"Genotype(normal={_cell_str(n)}, normal_concat={CONCAT}, reduce={_cell_str(r)}, "
            f"reduce_concat={CONCAT})")


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
            a, b = sorted(src for _, src in cell[2 * (k - 2):2 * (k - 2) + 2])
            out[f"{CS}inputs_node_{c}_{k}"] = f"{a}_{b}"
    return out


def canonical(arch):
    """Each node's two (op, from) pairs sorted by input node (see the module docstring)."""
    return tuple(tuple(p for k in NODES for p in sorted(cell[2 * (k - 2):2 * (k - 2) + 2], key=lambda p: p[1]))
                 for cell in coerce(arch))


def num_cells():
    """Canonical cells per cell type: prod over nodes of C(k, 2) input pairs x 7^2 ops."""
    n = 1
    for k in NODES:
        n *= k * (k - 1) // 2 * len(OPS) ** 2
    return n


def _randint(n, gen):
    return int(torch.randint(n, (1,), generator=gen))


def sample(gen):
    """One genotype as the reference samples (NB301Rollout.random_sample_arch): per node two distinct inputs drawn
    without replacement (in draw order) and two ops, uniform; uniform over canonical genotypes."""
    cells = []
    for _ in CELLS:
        cell = []
        for k in NODES:
            a = _randint(k, gen)
            b = _randint(k - 1, gen)
            b += b >= a
            cell += [(OPS[_randint(len(OPS), gen)], a), (OPS[_randint(len(OPS), gen)], b)]
        cells.append(tuple(cell))
    return tuple(cells)


def mutate(arch, gen):
    """One decision changed (canonical result): a cell, then an op of one connection or, with probability 1/2, the
    input of a connection of nodes 3..5 (to a node neither of its node's inputs)."""
    cells = [list(c) for c in canonical(arch)]
    c = _randint(2, gen)
    if _randint(2, gen):
        i = 2 + _randint(6, gen)
        k, (op, src) = node_of(i), cells[c][i]
        other = cells[c][i ^ 1][1]
        free = [n for n in range(k) if n not in (src, other)]
        cells[c][i] = (op, free[_randint(len(free), gen)])
    else:
        i = _randint(8, gen)
        op, src = cells[c][i]
        new = _randint(len(OPS) - 1, gen)
        cells[c][i] = (OPS[new + (new >= OPS.index(op))], src)
    return canonical(cells)
