"""NB301 genotype drawing: both cells, connections coloured by their GLOW block (CLOSE Fig. 4; the space's ``draw``)."""
import textwrap

import matplotlib.pyplot as plt
import numpy as np

from ..plots import block_colours
from .draw import bezier, canvas, finish, level_of
from .nb301_arch import CELLS, node_of

NODE_XY = {0: (0.0, 0.6), 1: (0.0, -0.6), 2: (1.2, 0.0), 3: (2.4, 0.0), 4: (3.6, 0.0), 5: (4.8, 0.0)}


def _bend(src, dst):
    """Control-point height of the curve src -> dst: longer jumps bend further (alternating sides)."""
    if src < 2:
        return NODE_XY[src][1] * 0.6 + (0.25 if src == 0 else -0.25) * (dst - 2)
    return 0.8 * (dst - src - 1) * (1 if (src + dst) % 2 else -1)


def draw_cell(ax, cell, rows, colours, y0, name):
    """One cell at height y0: rows are its slot-table rows (block, p, op)."""
    for i, ((_, src), row) in enumerate(zip(cell, rows.itertuples())):
        dst = node_of(i)
        curve = bezier(np.array(NODE_XY[src]) + [0, y0], np.array(NODE_XY[dst]) + [0, y0], y0 + _bend(src, dst))
        colour = colours[int(row.block)]
        ax.plot(*curve.T, color=colour, lw=3, zorder=1)
        ax.annotate("", xy=curve[-3], xytext=curve[-7], zorder=2, arrowprops=dict(arrowstyle="-|>", color=colour))
        ax.text(*curve[20], f"{row.op} B{int(row.block)}\np={row.p:.2f}", ha="center", va="center", fontsize=7,
                zorder=3, bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=colour, lw=1))
    for n, (x, y) in NODE_XY.items():
        ax.scatter([x], [y + y0], s=380, c="white" if n > 1 else "lightgrey", edgecolors="black", zorder=4)
        ax.text(x, y + y0, f"c{n - 2}" if n < 2 else str(n), ha="center", va="center", fontsize=7, zorder=5)
    ax.text(-0.5, y0, name, ha="right", va="center", fontsize=9, rotation=90)


def draw_cells(arch, table, title=None, ax=None):
    """Both cells of ``arch`` (normal above, reduce below) from its ``routing.arch_table`` rows."""
    colours = block_colours(max(level_of(table), int(table["block"].max()) + 1))
    fig, ax = canvas(ax, (7.5, 5.2))
    for k, (name, cell) in enumerate(zip(CELLS, arch)):
        draw_cell(ax, cell, table[table["cell"] == name], colours, 1.6 - 3.2 * k, name)
    handles = [plt.Line2D([], [], color=colours[k], lw=3, label=f"block {k}") for k in range(len(colours))][:14]
    ax.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=7, frameon=False,
              bbox_to_anchor=(0.5, -0.1))
    ax.set(xlim=(-0.9, 5.3), ylim=(-3.0, 3.0), title=textwrap.fill(title or "", 100))
    ax.axis("off")
    return finish(fig, ax, 0.02, 0.08, 0.15)
