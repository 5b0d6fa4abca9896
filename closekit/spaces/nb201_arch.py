"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020) as CLOSE §4.1 uses it: a DAG on 4 nodes (0 input, 3 output)
with all 6 edges i->j, each one of 5 ops. An architecture is a tuple of 6 op indices in EDGES order, the order of the
official string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``; its 15,625 cells form 6,466 isomorphism classes, of which
6,321 representatives are valid.
"""
import functools
import itertools
import operator
from collections import defaultdict

import torch

from .common import one_line, randint

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from) in string order
Arch = tuple[int, ...]  # 6 op indices in EDGES order
NONE, SKIP = 0, 1
CONVS = (2, 3)  # nor_conv_1x1, nor_conv_3x3
_BAD = "bad NB201 architecture string: "


def parse(s: str) -> Arch:
    """Official NB201 string -> op-index tuple; one-line ValueError naming the bad token."""
    if not isinstance(s, str):
        raise ValueError(f"{_BAD}expected a str, got {type(s).__name__}")
    groups = s.strip().split("+")
    if len(groups) != 3:
        raise ValueError(f"{_BAD}expected 3 '+'-separated node groups, got {len(groups)} in {s!r}")
    ops = {}
    for j, group in enumerate(groups, start=1):
        for tok in filter(None, group.split("|")):
            parts = tok.split("~")
            if len(parts) != 2:
                raise ValueError(f"{_BAD}token {tok!r} of node {j} is not 'op~input' (needs exactly one '~')")
            op, src = parts
            if op not in OPS:
                raise ValueError(f"{_BAD}unknown op {op!r} in token {tok!r} (ops: {', '.join(OPS)})")
            if src not in [str(i) for i in range(j)]:
                raise ValueError(f"{_BAD}input {src!r} in token {tok!r} of node {j} (expected 0..{j - 1})")
            if (j, int(src)) in ops:
                raise ValueError(f"{_BAD}duplicate input {src} in token {tok!r} of node {j}")
            ops[j, int(src)] = OPS.index(op)
        missing = [i for i in range(j) if (j, i) not in ops]
        if missing:
            raise ValueError(f"{_BAD}node {j} group {group!r} lacks input(s) {missing} (expected op~0..op~{j - 1})")
    return tuple(ops[e] for e in EDGES)


def coerce(x) -> Arch:
    """An Arch from an official string or a sequence of 6 op indices (validated)."""
    if isinstance(x, str):
        return parse(x)
    try:
        arch = tuple(operator.index(v) for v in x)
    except TypeError:
        arch = ()
    if len(arch) != len(EDGES) or not all(0 <= v < len(OPS) for v in arch):
        raise ValueError(f"bad NB201 architecture: expected a string or 6 op indices in 0..4, got {one_line(x)}")
    return arch


def to_str(arch) -> str:
    """Op-index tuple -> official NB201 string."""
    groups = [[] for _ in range(3)]
    for (j, i), op in zip(EDGES, coerce(arch)):
        groups[j - 1].append(f"{OPS[op]}~{i}")
    return "+".join("|" + "|".join(g) + "|" for g in groups)


def to_matrix(arch) -> list[list[int]]:
    """Op-index tuple -> 4x4 matrix with M[j][i] = op of edge i->j (0 above the diagonal)."""
    m = [[0] * 4 for _ in range(4)]
    for (j, i), op in zip(EDGES, coerce(arch)):
        m[j][i] = op
    return m


def from_matrix(m) -> Arch:
    """4x4 lower-triangular op matrix -> op-index tuple."""
    try:
        rows = [list(r) for r in m]
    except TypeError:
        rows = []
    if len(rows) != 4 or any(len(r) != 4 for r in rows):
        raise ValueError(f"bad NB201 matrix: expected 4x4 nested sequence, got {one_line(m)}")
    if any(rows[j][i] != 0 for j in range(4) for i in range(j, 4)):
        raise ValueError(f"bad NB201 matrix: nonzero entry on/above the diagonal in {one_line(rows)}")
    return coerce([rows[j][i] for j, i in EDGES])


def live_edges(arch) -> tuple[bool, ...]:
    """Per edge: op is not none, input-reachable from node 0 and reaching node 3."""
    on = {e: op != NONE for e, op in zip(EDGES, coerce(arch))}
    fwd, bwd = {0}, {3}                         # nodes reachable from the input, nodes that reach the output
    for j in (1, 2, 3):
        if any(on[j, i] and i in fwd for i in range(j)):
            fwd.add(j)
    for i in (2, 1, 0):
        if any(on[j, i] and j in bwd for j in range(i + 1, 4)):
            bwd.add(i)
    return tuple(on[j, i] and i in fwd and j in bwd for j, i in EDGES)


def is_valid(arch) -> bool:
    """CLOSE's check_valid: at least one conv op sits on a live edge."""
    arch = coerce(arch)
    return any(live and op in CONVS for live, op in zip(live_edges(arch), arch))


def iso_key(arch) -> str:
    """Isomorphism class key: the NB201 API's Structure.to_unique_str(consider_zero=True) (6,466 classes)."""
    arch, nodes = coerce(arch), ["0"]
    for j in (1, 2, 3):
        terms = []
        for (to, i), op in zip(EDGES, arch):
            if to == j:                     # '#' kept for a zeroed path: dropping them gives 6,363 classes
                zero = op == NONE or nodes[i] == "#"
                terms.append("#" if zero else nodes[i] if op == SKIP else f"({nodes[i]})@{OPS[op]}")
        nodes.append("+".join(sorted(terms)))
    return nodes[3]


class NB201Archs:
    """Enumerations, canonicalisation and sampling over the NB201 cell space."""

    @functools.cached_property
    def all(self) -> list[Arch]:
        """All 15,625 cells in lexicographic tuple order."""
        return list(itertools.product(range(len(OPS)), repeat=len(EDGES)))

    @functools.cached_property
    def _classes(self) -> dict[str, list[Arch]]:
        """iso_key -> sorted members (first member = representative; ``all`` is lexicographic)."""
        classes = defaultdict(list)
        for arch in self.all:
            classes[iso_key(arch)].append(arch)
        return dict(classes)

    @functools.cached_property
    def representatives(self) -> list[Arch]:
        """The 6,466 class representatives (smallest member tuple), sorted."""
        return sorted(m[0] for m in self._classes.values())

    @functools.cached_property
    def valid(self) -> list[Arch]:
        """The 6,321 representatives that pass is_valid, sorted."""
        return [a for a in self.representatives if is_valid(a)]

    @property
    def num_archs(self) -> int:
        return len(self.all)

    @property
    def num_iso(self) -> int:
        return len(self.representatives)

    @property
    def num_valid(self) -> int:
        return len(self.valid)

    def members(self, arch) -> list[Arch]:
        """All cells isomorphic to arch (sorted, includes arch)."""
        return list(self._classes[iso_key(arch)])

    def canonical(self, arch) -> Arch:
        """The representative of arch's isomorphism class."""
        return self._classes[iso_key(arch)][0]

    def canonical_str(self, arch) -> str:
        return to_str(self.canonical(arch))

    def sample(self, generator) -> Arch:
        """One valid representative, uniform, reproducible from the generator's state."""
        return self.valid[randint(len(self.valid), generator)]

    def sample_list(self, n: int, seed: int) -> list[Arch]:
        """n distinct valid representatives, uniform without replacement, seeded."""
        if not 0 <= n <= self.num_valid:
            raise ValueError(f"sample_list: n={n} not in 0..{self.num_valid}")
        order = torch.randperm(self.num_valid, generator=torch.Generator().manual_seed(seed))
        return [self.valid[i] for i in order[:n].tolist()]
