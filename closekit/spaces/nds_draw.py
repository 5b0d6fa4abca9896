"""Drawing of one NDS configuration: its 3 stages as rows of block positions, each coloured by its block (the
position -> block table of CLOSE §3.4 for NDS; the space's ``draw``). Imports matplotlib only when asked for.
"""
import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.figure import Figure

from .nb201_draw import LINE_IN


def colours(n):
    """One colour per block; the kit's tab10 palette up to 10 blocks, husl beyond (NDS banks hold up to 23)."""
    return sns.color_palette("tab10" if n <= 10 else "husl", max(n, 1))


def draw_stages(table, title=None, ax=None):
    """``routing.arch_table`` of one arch: a grid stage x position, a live position filled in its block's colour
    and labelled with the block, an unused one hollow (it still has a block: the table is per position)."""
    level = sum(str(c).startswith("p") and str(c)[1:].isdigit() for c in table.columns)
    pal, fig = colours(level), None
    cells = list(dict.fromkeys(table["cell"]))
    if ax is None:
        fig = Figure(figsize=(max(6.4, 0.32 * table["slot"].max() + 2), 0.9 + 0.55 * len(cells)))  # not pyplot's
        ax = fig.subplots()
    for row in table.itertuples():
        y = cells.index(row.cell)
        c = pal[row.block]
        ax.add_patch(plt.Rectangle((row.slot, -y - 0.4), 0.9, 0.8, fc=c if row.live else "white", ec=c, lw=1.5))
        ax.text(row.slot + 0.45, -y, str(row.block), ha="center", va="center", fontsize=7,
                color="black" if row.live else "grey")
    for y, cell in enumerate(cells):
        op = next((o for o in table.loc[table["cell"] == cell, "op"] if o != "none"), "depth 1")
        ax.text(-0.3, -y, f"{cell}  {op}", ha="right", va="center", fontsize=8)
    ax.set(xlim=(-0.2, table["slot"].max() + 1.1), ylim=(-len(cells) + 0.4, 0.6), title=title or "")
    ax.set_xticks([s + 0.45 for s in sorted(set(table["slot"]))], [str(s + 1) for s in sorted(set(table["slot"]))],
                  fontsize=7)
    ax.set_yticks([])
    ax.set_xlabel("block position after the stage's first block (number: its bank block)", fontsize=8)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.title.set_fontsize(9)
    if fig is not None:                                 # fixed margins: tight_layout costs a whole extra draw
        w, h = fig.get_size_inches()
        fig.subplots_adjust(1.1 / w, 0.6 / h, 0.98, 1 - (0.1 + LINE_IN * len(ax.get_title().splitlines())) / h)
    return fig if fig is not None else ax.figure
