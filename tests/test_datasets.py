"""pygrad.datasets.make_moons: scikit-learn's two moons, point for point,
without scikit-learn (the comparisons skip where it is not installed)."""
import math

import numpy as np
import pytest

from pygrad.datasets import make_moons


def same_bits(a, b):
    """Equal arrays of the same dtype, bit for bit (-0.0 and NaN included)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("n_samples", [7, 100, 1001])
@pytest.mark.parametrize("random_state", [0, 1, 42, 1337, 2**32 - 1])
def test_the_points_are_scikit_learns_to_the_bit(n_samples, random_state):
    datasets = pytest.importorskip("sklearn.datasets")
    for kwargs in (dict(noise=0.1), dict(noise=0.3, shuffle=False), dict(), dict(noise=0.0)):
        X, y = make_moons(n_samples, random_state=random_state, **kwargs)
        X_sk, y_sk = datasets.make_moons(n_samples, random_state=random_state, **kwargs)
        assert same_bits(X, X_sk) and same_bits(y, y_sk), kwargs


def test_the_generators_are_drawn_as_scikit_learn_draws_them():
    """numpy's global RandomState (random_state=None, as micrograd's demo
    uses it after np.random.seed), a RandomState given, a pair of sizes: the
    same points, and the generator left in the same state."""
    datasets = pytest.importorskip("sklearn.datasets")
    np.random.seed(1337)
    ours = make_moons(n_samples=100, noise=0.1)
    after_ours = np.random.random()
    np.random.seed(1337)
    theirs = datasets.make_moons(n_samples=100, noise=0.1)
    assert all(map(same_bits, ours, theirs)) and np.random.random() == after_ours
    for n in [(3, 5), (0, 4)]:
        rs, rs_sk = np.random.RandomState(5), np.random.RandomState(5)
        assert all(map(same_bits, make_moons(n, noise=0.2, random_state=rs),
                       datasets.make_moons(n, noise=0.2, random_state=rs_sk)))
        assert rs.random() == rs_sk.random()


def test_shapes_types_and_labels():
    for n in (1, 2, 7, 100):
        X, y = make_moons(n, noise=0.1, random_state=0)
        assert X.shape == (n, 2) and X.dtype == np.float64
        assert y.shape == (n,) and y.dtype == np.intp
        assert (y == 0).sum() == n // 2 and (y == 1).sum() == n - n // 2  # outer, inner


def test_noiseless_points_lie_on_the_arcs_in_order():
    X, y = make_moons(101, shuffle=False)
    for (x0, x1), label in zip(X.tolist(), y.tolist()):
        if label == 0:  # outer arc: the upper half of the unit circle at (0, 0)
            assert math.hypot(x0, x1) == pytest.approx(1.0, abs=1e-12) and x1 >= -1e-12
        else:  # inner arc: the lower half of the unit circle at (1, 0.5)
            assert math.hypot(x0 - 1.0, x1 - 0.5) == pytest.approx(1.0, abs=1e-12)
            assert x1 <= 0.5 + 1e-12
    outer, inner = X[:50], X[50:]
    assert outer[0].tolist() == [1.0, 0.0] and outer[-1] == pytest.approx([-1.0, 0.0], abs=1e-15)
    assert inner[0].tolist() == [0.0, 0.5] and inner[-1] == pytest.approx([2.0, 0.5], abs=1e-15)
    assert inner[25] == pytest.approx([1.0, -0.5], abs=1e-15)  # the bottom of the inner arc


def test_shuffled_points_are_a_permutation_and_noise_has_its_spread():
    clean, labels = make_moons(2000, shuffle=False)
    shuffled, shuffled_labels = make_moons(2000, random_state=3)
    order = np.lexsort(shuffled.T)
    assert same_bits(shuffled[order], clean[np.lexsort(clean.T)])
    assert sorted(shuffled_labels.tolist()) == sorted(labels.tolist())
    noisy, _ = make_moons(2000, noise=0.1, shuffle=False, random_state=3)
    offsets = (noisy - clean).ravel()
    assert abs(offsets.mean()) < 0.01  # 4000 draws: the mean's standard error is 0.0016
    assert offsets.std(ddof=1) == pytest.approx(0.1, rel=0.05)


def test_deterministic_by_seed_and_seeds_differ():
    a, b = make_moons(100, noise=0.1, random_state=5), make_moons(100, noise=0.1, random_state=5)
    assert all(map(same_bits, a, b))
    c = make_moons(100, noise=0.1, random_state=6)
    assert not np.array_equal(a[0], c[0])


def test_does_not_touch_pythons_random_state():
    import random
    random.seed(123)
    expected = random.random()
    random.seed(123)
    make_moons(100, noise=0.1, random_state=7)
    assert random.random() == expected


@pytest.mark.parametrize("kwargs, exc", [
    (dict(n_samples=0), ValueError), (dict(n_samples=-1), ValueError),
    (dict(n_samples=10.0), TypeError), (dict(n_samples=True), TypeError),
    (dict(n_samples=(1, -1)), TypeError), (dict(n_samples=(1, 2, 3)), TypeError),
    (dict(n_samples=10, noise=-0.1), ValueError), (dict(n_samples=10, noise=math.nan), ValueError),
    (dict(n_samples=10, noise="0.1"), TypeError), (dict(n_samples=10, shuffle=1), TypeError),
    (dict(n_samples=10, random_state="x"), TypeError), (dict(n_samples=10, random_state=-1), ValueError),
])
def test_bad_arguments(kwargs, exc):
    with pytest.raises(exc):
        make_moons(**kwargs)
