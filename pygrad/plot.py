"""Loss curves as PNG files: with matplotlib when it is installed (the `plot`
extra), else with a small built-in writer (numpy, zlib and struct only), so
`pygrad train` writes a plot after a plain `pip install`.

The built-in plot is the loss on a log scale against the iteration: a line
(each pixel column spans the smallest to the largest loss of the iterations
it covers), the axes, a grid line at each power of ten labelled 1E-4 and
so on, and the first and last iteration numbers. It has no title.
"""
import struct
import zlib

import numpy as np

WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 32  # margins around the plot area, in pixels
# 3x5 glyphs, one octal digit per row of 3 pixels (4 = left pixel, 1 = right).
_FONT = dict(zip("0123456789E-", "75557 26227 71747 71717 55711 74717 74757 71111 75757 "
                 "75717 74747 00700".split()))


def save_loss_plot(losses, path, title="", xlabel="iteration", writer=None):
    """Write losses (one per iteration) to path as a PNG. writer:
    "matplotlib", "builtin", or None for matplotlib when it can be imported.
    Returns the writer used. Losses that are not positive and finite are
    left out (a log scale has no place for them)."""
    if writer is None:
        try:
            import matplotlib  # noqa: F401
            writer = "matplotlib"
        except ImportError:
            writer = "builtin"
    if writer == "matplotlib":
        _save_matplotlib(losses, path, title, xlabel)
    elif writer == "builtin":
        png = png_loss_plot(losses)  # first: a plot that fails leaves the old file
        with open(path, "wb") as f:
            f.write(png)
    else:
        raise ValueError(f"writer must be 'matplotlib', 'builtin' or None, not {writer!r}")
    return writer


def _save_matplotlib(losses, path, title, xlabel):
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    y = np.asarray(losses, dtype=np.float64)
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    ax.plot(np.arange(1, len(y) + 1), np.where(y > 0, y, np.nan), linewidth=1)
    ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel="loss", title=title)
    ax.grid(True, which="major", alpha=0.4)
    fig.savefig(path, dpi=100, format="png")


def png_loss_plot(losses):
    """The built-in plot's PNG file, as bytes."""
    y = np.asarray(losses, dtype=np.float64)
    keep = np.isfinite(y) & (y > 0)
    if not keep.any():
        raise ValueError("no positive, finite loss to plot on a log scale")
    xs, ys = np.flatnonzero(keep), np.log10(y[keep])
    lo_dec, hi_dec = int(np.floor(ys.min())), int(np.ceil(ys.max()))
    hi_dec += hi_dec == lo_dec
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    img = np.full((HEIGHT, WIDTH, 3), 255, dtype=np.uint8)

    def row(v):  # a log10 value's pixel row
        return np.rint(TOP + (hi_dec - v) / (hi_dec - lo_dec) * (h - 1)).astype(int)

    for d in range(lo_dec, hi_dec + 1):  # grid line and label at each power of ten
        r = int(row(d))
        img[r, LEFT:LEFT + w] = 210
        _text(img, f"1E{d}" if d else "1", LEFT - 6, r - 5, right=True)
    img[TOP:TOP + h, LEFT - 1] = img[TOP + h, LEFT - 1:LEFT + w] = 0  # the axes
    _text(img, "1", LEFT, TOP + h + 8)
    _text(img, str(len(y)), LEFT + w - 1, TOP + h + 8, right=True)

    # The polyline through (x, log10 loss), x scaled to columns 0 .. w-1: a
    # column spans the line's lowest to highest point between its edges.
    cols = xs * (w - 1) / max(len(y) - 1, 1)
    edges = np.interp(np.arange(w + 1) - 0.5, cols, ys)
    lo, hi = np.minimum(edges[:-1], edges[1:]), np.maximum(edges[:-1], edges[1:])
    np.minimum.at(lo, np.rint(cols).astype(int), ys)
    np.maximum.at(hi, np.rint(cols).astype(int), ys)
    first = np.rint(cols[0]).astype(int)  # no line before the first point or after the last
    for c, top, bottom in zip(range(w), row(hi), row(lo)):
        if first <= c <= cols[-1] + 0.5:
            img[top:bottom + 2, LEFT + c] = (31, 119, 180)  # two pixels thick at least

    raw = np.hstack([np.zeros((HEIGHT, 1), np.uint8), img.reshape(HEIGHT, -1)])  # filter 0 per row
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)) \
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)) + _chunk(b"IEND", b"")


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _text(img, s, x, y, right=False, scale=2):
    """Draw s with its top left (or top right) corner at (x, y), in black."""
    if right:
        x -= 4 * scale * len(s) - scale
    for ch in s:
        for r, bits in enumerate(_FONT[ch]):
            for c in range(3):
                if int(bits) & (4 >> c):
                    img[y + r * scale:y + (r + 1) * scale, x + c * scale:x + (c + 1) * scale] = 0
        x += 4 * scale
