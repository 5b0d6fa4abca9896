"""NB201 cell drawing, edges coloured by their GLOW block (CLOSE Fig. 4; the space's ``draw``). Imported only when
a drawing is asked for."""
import matplotlib.pyplot as plt
import numpy as np

from ..plots import block_colours
from .draw import bezier, canvas, finish, level_of
from .nb201_arch import EDGES

NODE_X = (0.0, 1.0, 2.0, 3.0)                       # cell nodes on a line: input, 1, 2, output
EDGE_BEND = {(0, 1): 0.0, (1, 2): 0.0, (2, 3): 0.0, (0, 2): 0.9, (1, 3): -0.9, (0, 3): 1.8}


def draw_cell(table, title=None, ax=None):
    """The cell DAG of one ``routing.arch_table``, edges coloured by block; none edges dashed, dead ones faded."""
    level = level_of(table)
    colours = block_colours(level)
    fig, ax = canvas(ax, (6.4, 3.6))
    for row in table.itertuples():
        dst, src = EDGES[row.slot]
        curve = bezier(np.array([NODE_X[src], 0.0]), np.array([NODE_X[dst], 0.0]), EDGE_BEND[src, dst])
        none = row.op == "none"
        colour = "lightgrey" if none else colours[row.block]
        ax.plot(*curve.T, color=colour, lw=1.5 if none else 4, ls="--" if none else "-",
                alpha=1 if row.live or none else 0.35, zorder=1)
        if not none:
            ax.annotate("", xy=curve[-4], xytext=curve[-8], zorder=2,
                        arrowprops=dict(arrowstyle="-|>", color=colour, lw=2, alpha=1 if row.live else 0.35))
        label = "none" if none else f"{row.op}\nB{row.block} p={row.p:.2f}" + ("" if row.live else "\n(dead)")
        ax.text(*curve[20], label, ha="center", va="center", fontsize=8, zorder=3,
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec=colour, lw=1))
    ax.scatter(NODE_X, [0] * 4, s=500, c="white", edgecolors="black", zorder=4)
    for x, name in zip(NODE_X, ("in", "1", "2", "out")):
        ax.text(x, 0, name, ha="center", va="center", fontsize=8, zorder=5)
    handles = [plt.Line2D([], [], color=colours[k], lw=4, label=f"block {k}") for k in range(level)]
    ax.legend(handles=handles, loc="lower center", ncol=min(level, 6), fontsize=8, frameon=False,
              bbox_to_anchor=(0.5, -0.12))
    ax.set(xlim=(-0.4, 3.4), ylim=(-0.75, 1.05), title=title or "")
    ax.axis("off")
    return finish(fig, ax, 0.02, 0.1, 0.15)
