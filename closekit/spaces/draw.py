"""What the spaces' drawings share (each space's ``draw``, CLOSE Fig. 4): a figure outside pyplot, fixed margins,
curved edges and the level of a routing table. Imported only when a drawing is asked for."""
import numpy as np
from matplotlib.figure import Figure

LINE_IN = 0.17                                      # height of a 9 pt title line, inches


def level_of(table):
    """The number of active blocks of a ``routing.arch_table`` (its p0, p1, ... columns)."""
    return sum(str(c).startswith("p") and str(c)[1:].isdigit() for c in table.columns)


def canvas(ax, size):
    """(new figure or None, axes): a Figure outside pyplot (no state shared with other draws) when ax is None."""
    if ax is not None:
        return None, ax
    fig = Figure(figsize=size)
    return fig, fig.subplots()


def finish(fig, ax, left, bottom, top_pad):            # left, bottom: fractions; top_pad: inches above the title
    """The drawing, its title at 9 pt; a new figure gets fixed margins (tight_layout costs a whole extra draw)."""
    ax.title.set_fontsize(9)
    if fig is None:
        return ax.figure
    h = fig.get_size_inches()[1]
    fig.subplots_adjust(left, bottom, 0.98, 1 - (top_pad + LINE_IN * len(ax.get_title().splitlines())) / h)
    return fig


def bezier(p0, p2, bend):
    """40 points of the quadratic Bezier curve p0 -> p2 whose control point sits mid-way at height ``bend``."""
    c = np.array([(p0[0] + p2[0]) / 2, bend])
    t = np.linspace(0, 1, 40)[:, None]
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * c + t ** 2 * p2


