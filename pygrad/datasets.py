"""Data sets for the workloads; nothing is downloaded, scikit-learn is not needed.

make_moons is the two-moons set of micrograd's demo (workload W2), generated
in pure Python.

load_digits is scikit-learn's bundled 8x8 digits (the `digits` workload),
shipped in the package as pygrad/data/digits.csv.gz, the file
sklearn/datasets/data/digits.csv.gz copied unchanged from the scikit-learn
1.9.1 wheel on PyPI (scikit-learn is BSD-3-Clause). The data is the test set
of the UCI Machine Learning Repository's "Optical Recognition of Handwritten
Digits" (E. Alpaydin and C. Kaynak, 1998).
pygrad/data/README.md gives the provenance and the licences.
"""
import gzip
import math
import random
from importlib import resources

import numpy as np

__all__ = ["make_moons", "load_digits"]


def _linspace_0_pi(n):
    """numpy.linspace(0, pi, n) as a list, computed the way numpy does it:
    i * (pi / (n - 1)) for each i, with the last point set to pi exactly."""
    if n <= 0:
        return []
    if n == 1:
        return [0.0]
    step = math.pi / (n - 1)
    points = [i * step for i in range(n)]
    points[-1] = math.pi
    return points


def make_moons(n_samples=100, noise=0.1, seed=0):
    """Two interleaving half circles, labelled -1.0 and +1.0.

    The recipe is scikit-learn's sklearn.datasets.make_moons (version 1.x):
    n_out = n_samples // 2 points on the outer arc (cos t, sin t) and
    n_in = n_samples - n_out points on the inner arc (1 - cos t, 1 - sin t - 0.5),
    t = linspace(0, pi, n) on each arc, then Gaussian noise of standard
    deviation `noise` added to every coordinate. Here the noise comes from
    random.Random(seed).gauss (drawn point by point, x then y), so the points
    are not sklearn's for the same seed, only the same geometry and
    distribution. sklearn's label 0 (outer arc) becomes -1.0 and label 1
    (inner arc) becomes +1.0, the targets of a hinge loss. Unlike sklearn
    (shuffle=True by default), the points are not shuffled: the n_out outer
    points come first, then the n_in inner ones.

    Returns (X, y): X a list of n_samples [x0, x1] lists of floats, y a list
    of n_samples floats, each -1.0 or +1.0. noise=0 or None adds no noise.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int):
        raise TypeError(f"n_samples must be an int, not {type(n_samples).__name__!r}")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, not {n_samples}")
    if noise is not None and not noise >= 0:  # also rejects NaN
        raise ValueError(f"noise must be >= 0 or None, not {noise!r}")

    n_out = n_samples // 2
    n_in = n_samples - n_out
    X = [[math.cos(t), math.sin(t)] for t in _linspace_0_pi(n_out)]
    X += [[1.0 - math.cos(t), 1.0 - math.sin(t) - 0.5] for t in _linspace_0_pi(n_in)]
    y = [-1.0] * n_out + [1.0] * n_in

    if noise:
        rng = random.Random(seed)
        for point in X:
            point[0] += rng.gauss(0.0, noise)
            point[1] += rng.gauss(0.0, noise)
    return X, y


def load_digits():
    """scikit-learn's digits: 1797 handwritten digits as 8x8 images.

    Returns (X, y): X a float64 numpy array of shape (1797, 64), each row an
    image's pixels row by row, scaled from 0..16 (the counts of ink in 4x4
    blocks of a 32x32 bitmap) to [0, 1]; y an int64 array of the 1797
    classes, 0 to 9. The rows are in the file's order (sklearn's order).
    """
    with resources.files("pygrad").joinpath("data/digits.csv.gz").open("rb") as f:
        table = np.loadtxt(gzip.open(f), delimiter=",", dtype=np.int64)
    return table[:, :64] / 16.0, table[:, 64]
