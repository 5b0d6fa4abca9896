"""NDS configuration drawing: 3 stages as rows of block positions coloured by their block (the space's ``draw``)."""
import matplotlib.pyplot as plt
import seaborn as sns

from .draw import canvas, finish, level_of


def draw_stages(table, title=None, ax=None):
    """A grid stage x position of one ``routing.arch_table``: live positions filled in their block's colour."""
    level = level_of(table)
    pal = sns.color_palette("tab10" if level <= 10 else "husl", max(level, 1))    # NDS banks hold up to 23 blocks
    cells, last = list(dict.fromkeys(table["cell"])), table["slot"].max()
    w, h = max(6.4, 0.32 * last + 2), 0.9 + 0.55 * len(cells)                   # inches
    fig, ax = canvas(ax, (w, h))
    for row in table.itertuples():
        y, c = cells.index(row.cell), pal[row.block]
        ax.add_patch(plt.Rectangle((row.slot, -y - 0.4), 0.9, 0.8, fc=c if row.live else "white", ec=c, lw=1.5))
        ax.text(row.slot + 0.45, -y, str(row.block), ha="center", va="center", fontsize=7,
                color="black" if row.live else "grey")
    for y, cell in enumerate(cells):
        op = next((o for o in table.loc[table["cell"] == cell, "op"] if o != "none"), "depth 1")
        ax.text(-0.3, -y, f"{cell}  {op}", ha="right", va="center", fontsize=8)
    slots = sorted(set(table["slot"]))
    ax.set(xlim=(-0.2, last + 1.1), ylim=(-len(cells) + 0.4, 0.6), title=title or "")
    ax.set_xticks([s + 0.45 for s in slots], [str(s + 1) for s in slots], fontsize=7)
    ax.set_yticks([])
    ax.set_xlabel("block position after the stage's first block (number: its bank block)", fontsize=8)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return finish(fig, ax, 1.1 / w, 0.6 / h, 0.1)
