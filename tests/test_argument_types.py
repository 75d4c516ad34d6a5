"""The wrong kind of argument gets a TypeError that says what was expected,
checked in Python before anything reaches C (issue 11, item 14): a
pygrad.reference model where pygrad Values are needed (AttributeError
before), and losses of things that are not Values (AttributeError,
IndexError or KeyError before; or, for sum_squares of numbers, a float).
"""
import numpy
import pytest

import pygrad
from pygrad import Value, losses, reference


def reference_model():
    return reference.MLP(2, [3, 1])


def pygrad_model():
    return pygrad.MLP(2, [3, 1])


@pytest.mark.parametrize("call", [
    lambda m: pygrad.get_data(m), lambda m: pygrad.get_grad(m),
    lambda m: pygrad.set_data(m, 0.5), lambda m: pygrad.set_grad(m, 0.0),
    lambda m: pygrad.optim.SGD(m), lambda m: pygrad.optim.Adam(m),
    lambda m: pygrad.Tape(Value(1.0) * 2).train(2, inputs=m, data=numpy.zeros((1, 13))),
], ids=["get_data", "get_grad", "set_data", "set_grad", "SGD", "Adam", "Tape.train inputs"])
def test_a_reference_model_where_pygrad_values_are_needed_is_a_type_error(call):
    m = reference_model()
    before = [p.data for p in m.parameters()]
    with pytest.raises(TypeError, match=r"pygrad Values.*pygrad\.reference\.MLP.*not all pygrad Values"):
        call(m)
    assert [p.data for p in m.parameters()] == before
    call(pygrad_model())  # (the same call on pygrad's model works)


@pytest.mark.parametrize("values, words", [
    ([reference.Value(1.0)], "got 'pygrad.reference.Value'"),
    (Value(1.0), "not 'pygrad.engine.Value'"),  # one Value, not a list of them
    (5, "not 'int'"), (None, "not 'NoneType'"), ("ab", "not 'str'"),
])
def test_arrays_of_what_are_not_pygrad_values_say_what_they_got(values, words):
    with pytest.raises(TypeError, match=words):
        pygrad.get_data(values)


P = [Value(0.5), Value(-1.0)]
R = [reference.Value(0.5), reference.Value(-1.0)]


@pytest.mark.parametrize("call, words", [
    (lambda: losses.cross_entropy([1.0, 2.0], 0), "a logit must be a Value, not 'float'"),
    (lambda: losses.cross_entropy(["a", "b"], 0), "a logit must be a Value, not 'str'"),
    (lambda: losses.cross_entropy([[1.0, 2.0]], [0]), "a logit must be a Value, not 'float'"),
    (lambda: losses.cross_entropy([P[0], None], 0), "a logit must be a Value, not 'NoneType'"),
    (lambda: losses.cross_entropy(numpy.array([1.0, 2.0]), 0), "not 'numpy.float64'"),
    (lambda: losses.cross_entropy({"a": P[0]}, 0), "logits must be a list, not 'dict'"),
    (lambda: losses.cross_entropy(set(P), 0), "logits must be a list, not 'set'"),
    (lambda: losses.cross_entropy("ab", 0), "logits must be a list, not 'str'"),
    (lambda: losses.cross_entropy(P[0], 0), "logits must be a list, not 'pygrad.engine.Value'"),
    (lambda: losses.cross_entropy(None, 0), "logits must be a list, not 'NoneType'"),
    (lambda: losses.cross_entropy([[P[0]], P[1]], [0, 0]), "not a mix of the two"),
    (lambda: losses.cross_entropy(P, {0}), "classes must be a list, not 'set'"),
    (lambda: losses.cross_entropy([P[0], R[1]], 0), "two engines"),
    (lambda: losses.sum_squares([1.0, 2.0], [1, 2]), "a prediction must be a Value, not 'float'"),
    (lambda: losses.mse([1.0], [1]), "a prediction must be a Value, not 'float'"),
    (lambda: losses.root_sum_squares([None], [1]), "a prediction must be a Value, not 'NoneType'"),
    (lambda: losses.root_sum_squares(None, [1]), "predictions must be a list, not 'NoneType'"),
    (lambda: losses.sum_squares([P[0], R[1]], [1, 2]), "two engines"),
    (lambda: losses.hinge([1.0], [1]), "must be a Value, not 'float'"),
    (lambda: losses.hinge(P, [1, -1], params=[1.0]), "must be a Value, not 'float'"),
    (lambda: losses.hinge(P, [1, -1], params=R), "two engines"),
])
def test_losses_of_what_are_not_values_are_type_errors(call, words, arena_baseline):
    with pytest.raises(TypeError, match=words):
        call()
    assert pygrad.live_nodes() == arena_baseline  # nothing was built


def test_losses_still_take_any_iterable_and_either_engine():
    want = losses.cross_entropy(P, 1).data
    assert losses.cross_entropy(iter(P), 1).data == want
    assert losses.cross_entropy(tuple(P), numpy.int64(1)).data == want
    assert losses.cross_entropy([tuple(P)], numpy.array([1])).data == want
    assert losses.cross_entropy(R, 1).data == want  # the expression, on the reference engine
    assert losses.sum_squares(numpy.array(P, dtype=object), numpy.array([1.0, 2.0])).data == \
        losses.sum_squares(R, [1.0, 2.0]).data


class ShrinkingLabel(int):
    """A class label whose conversion empties the row it labels."""

    row: list = []

    def __int__(self):
        self.row.clear()
        return int.__int__(self)

    __index__ = __int__


def test_cross_entropy_reads_the_rows_once_whatever_a_label_does_to_them():
    """The class of bug of issue 11's item 2: what Python converts is
    converted once, into lists of our own, before C sees it."""
    row = list(P)
    ShrinkingLabel.row = row
    got = losses.cross_entropy([row], [ShrinkingLabel(1)])
    assert got.data == losses.cross_entropy(P, 1).data
