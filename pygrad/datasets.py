"""Data sets for the workloads; nothing is downloaded, scikit-learn is not needed.

make_moons is the two-moons set of micrograd's demo (workload W2):
scikit-learn's make_moons, reproduced with numpy alone, point for point.

load_digits is scikit-learn's bundled 8x8 digits (the `digits` workload),
shipped in the package as pygrad/data/digits.csv.gz, the file
sklearn/datasets/data/digits.csv.gz copied unchanged from the scikit-learn
1.9.1 wheel on PyPI (scikit-learn is BSD-3-Clause). The data is the test set
of the UCI Machine Learning Repository's "Optical Recognition of Handwritten
Digits" (E. Alpaydin and C. Kaynak, 1998).
pygrad/data/README.md gives the provenance and the licences.
"""
import gzip
import numbers
from importlib import resources

import numpy as np

__all__ = ["make_moons", "load_digits"]


def make_moons(n_samples=100, *, shuffle=True, noise=None, random_state=None):
    """Two interleaving half circles: scikit-learn's sklearn.datasets.make_moons
    (1.x), the same points to the bit for the same arguments, without scikit-learn.

    The recipe is sklearn's, call for call: n_out = n_samples // 2 points on the
    outer arc (cos t, sin t) and n_in = n_samples - n_out on the inner arc
    (1 - cos t, 1 - sin t - 0.5), t = numpy.linspace(0, pi, n) on each; the
    labels 0 (outer) and 1 (inner); then, from one numpy RandomState, the rows
    shuffled (RandomState.shuffle of their indices) if shuffle, and Gaussian
    noise of standard deviation `noise` added to every coordinate
    (RandomState.normal over the (n_samples, 2) array) unless noise is None.

    n_samples: an int >= 1, or a pair (n_out, n_in). random_state: None
    (numpy's global RandomState, as np.random.seed sets it: micrograd's demo
    calls np.random.seed(1337) and then make_moons(n_samples=100, noise=0.1)),
    an int seed, or a numpy RandomState (drawn from, as sklearn does).
    Returns (X, y): X a float64 array of shape (n_samples, 2), y an int array
    (numpy's intp) of the labels, 0 or 1. The demo maps them to -1/+1 with
    y * 2 - 1.
    """
    if _is_int(n_samples):
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, not {n_samples}")
        n_out = int(n_samples) // 2
        n_in = int(n_samples) - n_out
    elif isinstance(n_samples, tuple) and len(n_samples) == 2 and all(
            _is_int(k) and k >= 0 for k in n_samples):
        n_out, n_in = int(n_samples[0]), int(n_samples[1])
    else:
        raise TypeError(f"n_samples must be an int >= 1 or a pair of ints >= 0, not {n_samples!r}")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be a bool, not {type(shuffle).__name__!r}")
    if noise is not None:
        if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
            raise TypeError(f"noise must be a real number or None, not {type(noise).__name__!r}")
        noise = float(noise)
        if not noise >= 0:  # also refuses NaN
            raise ValueError(f"noise must be >= 0 or None, not {noise!r}")
    generator = _random_state(random_state)

    outer_x = np.cos(np.linspace(0, np.pi, n_out))
    outer_y = np.sin(np.linspace(0, np.pi, n_out))
    inner_x = 1 - np.cos(np.linspace(0, np.pi, n_in))
    inner_y = 1 - np.sin(np.linspace(0, np.pi, n_in)) - 0.5
    X = np.vstack([np.append(outer_x, inner_x), np.append(outer_y, inner_y)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    if shuffle:  # sklearn.utils.shuffle: a permutation of the row indices
        indices = np.arange(n_out + n_in)
        generator.shuffle(indices)
        X, y = X[indices], y[indices]
    if noise is not None:
        X += generator.normal(scale=noise, size=X.shape)
    return X, y


def _is_int(x):
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _random_state(seed):
    """sklearn.utils.check_random_state: a numpy RandomState for seed."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if _is_int(seed):
        return np.random.RandomState(int(seed))
    if isinstance(seed, np.random.RandomState):
        return seed
    raise TypeError(f"random_state must be None, an int or a numpy RandomState, not {seed!r}")


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
