"""pygrad.datasets: the two-moons generator of workload W2."""
import math

import pytest

from pygrad.datasets import make_moons


def test_shapes_and_types():
    for n in (0, 1, 2, 7, 100):
        X, y = make_moons(n, noise=0.1, seed=0)
        assert len(X) == len(y) == n
        assert all(len(point) == 2 for point in X)
        assert all(type(v) is float for point in X for v in point)
        assert all(type(label) is float for label in y)


@pytest.mark.parametrize("n", [1, 2, 99, 100])
def test_label_balance(n):
    # sklearn's split: n // 2 outer points (-1), the rest inner (+1).
    _, y = make_moons(n)
    assert set(y) <= {-1.0, 1.0}
    assert y.count(-1.0) == n // 2
    assert y.count(1.0) == n - n // 2


@pytest.mark.parametrize("noise", [0, 0.0, None])
def test_noiseless_points_lie_on_the_arcs(noise):
    X, y = make_moons(101, noise=noise)
    for (x0, x1), label in zip(X, y):
        if label < 0:  # outer arc: the upper half of the unit circle at (0, 0)
            assert math.hypot(x0, x1) == pytest.approx(1.0, abs=1e-12)
            assert x1 >= -1e-12
        else:  # inner arc: the lower half of the unit circle at (1, 0.5)
            assert math.hypot(x0 - 1.0, x1 - 0.5) == pytest.approx(1.0, abs=1e-12)
            assert x1 <= 0.5 + 1e-12
    # Each arc runs from one end to the other, like numpy.linspace(0, pi, n).
    outer, inner = X[:50], X[50:]
    assert outer[0] == [1.0, 0.0] and outer[-1] == pytest.approx([-1.0, 0.0], abs=1e-15)
    assert inner[0] == [0.0, 0.5] and inner[-1] == pytest.approx([2.0, 0.5], abs=1e-15)
    assert inner[25] == pytest.approx([1.0, -0.5], abs=1e-15)  # the bottom of the inner arc


def test_noise_has_the_requested_spread():
    clean, _ = make_moons(2000, noise=0)
    noisy, _ = make_moons(2000, noise=0.1, seed=3)
    offsets = [a - b for p, q in zip(noisy, clean) for a, b in zip(p, q)]
    mean = sum(offsets) / len(offsets)
    sd = math.sqrt(sum((d - mean) ** 2 for d in offsets) / (len(offsets) - 1))
    assert abs(mean) < 0.01  # 4000 draws: the mean's standard error is 0.0016
    assert sd == pytest.approx(0.1, rel=0.05)


def test_deterministic_by_seed():
    assert make_moons(100, noise=0.1, seed=5) == make_moons(100, noise=0.1, seed=5)
    assert make_moons(100) == make_moons(100, noise=0.1, seed=0)  # the defaults


def test_different_seeds_differ():
    X1, y1 = make_moons(100, noise=0.1, seed=1)
    X2, y2 = make_moons(100, noise=0.1, seed=2)
    assert y1 == y2  # the labels do not depend on the noise
    assert all(p != q for p, q in zip(X1, X2))


def test_does_not_touch_the_global_random_state():
    import random
    random.seed(123)
    expected = random.random()
    random.seed(123)
    make_moons(100, noise=0.1, seed=7)
    assert random.random() == expected


def test_bad_arguments():
    with pytest.raises(ValueError):
        make_moons(-1)
    with pytest.raises(TypeError):
        make_moons(10.0)
    with pytest.raises(ValueError):
        make_moons(10, noise=-0.1)
    with pytest.raises(ValueError):
        make_moons(10, noise=float("nan"))
