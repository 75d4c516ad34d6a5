"""Plots as PNG files, drawn by matplotlib (the `plot` extra): the loss curve
of `pygrad train` and the speed table of `pygrad bench --plot`.

matplotlib is imported only here and only when a plot is drawn, through its
object API (matplotlib.figure.Figure with the Agg canvas): no pyplot, so no
global figure state and no GUI backend. Files are written atomically (a
temporary file beside the target, then os.replace), so a plot that fails
leaves the old file whole.
"""
from __future__ import annotations

import math
import os
import textwrap
from typing import Any, Sequence

from ._files import atomic_write  # (also what pygrad sweep and bench write with)

#: What to install for plots.
HOW_TO_INSTALL = "pip install 'pygrad-engine[plot]' (matplotlib)"


def have_matplotlib() -> bool:
    """Whether matplotlib can be imported (plots need it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # the Agg canvas, no pyplot

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)


def _thousands(ax_axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax_axis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10], integer=True))
    ax_axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))


def save_loss_plot(losses: Sequence[float], path: str | os.PathLike[str], title: str = "",
                   xlabel: str = "iteration") -> None:
    """Write the loss curve (one loss per iteration, numbered from 1) to path
    as a PNG. The loss axis is logarithmic where every loss is positive and
    they span more than a factor of ten, else linear; losses that are not
    finite are left out. ImportError without matplotlib."""
    import numpy as np

    y = np.asarray(losses, dtype=np.float64)
    x = np.arange(1, len(y) + 1)
    shown = y[np.isfinite(y)]
    fig = _figure(8, 5)
    ax = fig.subplots()
    ax.plot(x, np.where(np.isfinite(y), y, np.nan), linewidth=1.2, color="tab:blue")
    if len(shown) and shown.min() > 0 and shown.max() > 10 * shown.min():
        ax.set_yscale("log")
    ax.set_title(title or "training loss")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss" + (" (log scale)" if ax.get_yscale() == "log" else ""))
    ax.set_xlim(1, max(len(y), 2))
    _thousands(ax.xaxis)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", alpha=0.15)
    if len(shown):
        ax.annotate(f"final loss {y[-1]:.4g}", xy=(1, 1), xycoords="axes fraction",
                    xytext=(-8, -8), textcoords="offset points", ha="right", va="top")
    _save(fig, path)


def save_speed_plot(tables: Sequence[tuple[str, str, Sequence[dict[str, Any]]]],
                    path: str | os.PathLike[str], title: str = "") -> None:
    """Write the benchmark's speed tables to path as a PNG: one panel per
    table (its title, its time unit, its rows), a bar per implementation at
    its median time on a log axis, the whiskers its fastest and slowest
    repeat. Rows are dicts with "impl", "median", "min", "max" (seconds per
    unit). ImportError without matplotlib."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    tables = [t for t in tables if t[2]]
    heights = [0.9 + 0.32 * len(rows) + 0.2 * (len(name) > 80) for name, _, rows in tables]
    fig = _figure(10, sum(heights) + 0.6)
    axes = fig.subplots(len(tables), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (name, unit, rows) in zip(axes, tables):
        scale, label = _time_unit(min(r["min"] for r in rows))
        med = [r["median"] * scale for r in rows]
        low = [(r["median"] - r["min"]) * scale for r in rows]
        high = [(r["max"] - r["median"]) * scale for r in rows]
        ys = range(len(rows))
        ax.barh(ys, med, xerr=[low, high], color="tab:blue", alpha=0.8, capsize=3)
        ax.set_yticks(list(ys), [r["impl"] for r in rows])
        ax.invert_yaxis()  # the table's order, top down
        ax.set_xscale("log")  # from a power of ten, so that bar lengths compare honestly
        ax.set_xlim(left=10.0 ** math.floor(math.log10(min(m - lo for m, lo in zip(med, low)))))
        plain = FuncFormatter(lambda x, _: f"{x:,.0f}" if x >= 1 else f"{x:g}")
        ax.xaxis.set_major_formatter(plain)  # 1,000 rather than 10^3
        narrow = max(r["max"] for r in rows) < 10 * min(r["min"] for r in rows)
        ax.xaxis.set_minor_formatter(plain if narrow else NullFormatter())  # within a decade
        ax.set_xlabel(f"{label} per {unit} (median; whiskers: fastest and slowest repeat)")
        ax.set_title(textwrap.fill(name, 80), loc="left")
        ax.grid(True, axis="x", which="both", alpha=0.3)
        for yi, m, top in zip(ys, med, (r["max"] * scale for r in rows)):  # past the whisker
            ax.annotate(f"{m:,.0f}" if m >= 100 else f"{m:.3g}", xy=(top, yi), xytext=(5, 0),
                        textcoords="offset points", va="center", fontsize=8)
        ax.margins(x=0.12)  # room for the last label
    if title:
        fig.suptitle(title)
    _save(fig, path)


def _time_unit(seconds: float) -> tuple[float, str]:
    """(factor, name) of the largest time unit that shows seconds as a number >= 1."""
    for factor, name in ((1.0, "s"), (1e3, "ms"), (1e6, "us")):
        if seconds * factor >= 1:
            return factor, name
    return 1e9, "ns"
