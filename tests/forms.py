"""The ways a program can make one Value from others, shared by the hostile
table (test_hostile.py) and the random programs (test_properties.py), and
how their results are compared.

The ops come from the C op table (pygrad.engine), so a new op is tested
without editing this file."""
import operator
import struct

from pygrad.engine import UNARY_OPS

# The ops of two Values in the C op table, as Python spells them.
BINARY = {"add": operator.add, "mul": operator.mul, "pow": operator.pow}


def _method(name):
    return lambda x, y, c: getattr(x, name)()


def _binary(f):
    return lambda x, y, c: f(x, y)


# Each form builds one result from operands x, y (Values) and c (a number):
# every op of the table, and every operator of Value with a Value or a
# number on either side, as micrograd composes them.
FORMS = {
    **{f"x.{name}()": _method(name) for name in UNARY_OPS},
    **{f"x {name} y": _binary(f) for name, f in BINARY.items()},
    "x - y": lambda x, y, c: x - y,
    "x / y": lambda x, y, c: x / y,
    "-x": lambda x, y, c: -x,
    "abs(x)": lambda x, y, c: abs(x),
    "x + c": lambda x, y, c: x + c,
    "c + x": lambda x, y, c: c + x,
    "x - c": lambda x, y, c: x - c,
    "c - x": lambda x, y, c: c - x,
    "x * c": lambda x, y, c: x * c,
    "c * x": lambda x, y, c: c * x,
    "x / c": lambda x, y, c: x / c,
    "c / x": lambda x, y, c: c / x,
    "x ** c": lambda x, y, c: x**c,  # powk
    "c ** x": lambda x, y, c: c**x,
}

# Every way an operand b reaches pygrad, next to a Value x: operators on
# either side, the constructor, and assignment to data and grad.
USES = {
    "x + b": lambda x, b: x + b, "b + x": lambda x, b: b + x,
    "x - b": lambda x, b: x - b, "b - x": lambda x, b: b - x,
    "x * b": lambda x, b: x * b, "b * x": lambda x, b: b * x,
    "x / b": lambda x, b: x / b, "b / x": lambda x, b: b / x,
    "x ** b": lambda x, b: x**b, "b ** x": lambda x, b: b**x,
    "pow(x, 2, b)": lambda x, b: pow(x, 2, b),
    "Value(b)": lambda x, b: type(x)(b),
    "x.data = b": lambda x, b: setattr(x, "data", b),
    "x.grad = b": lambda x, b: setattr(x, "grad", b),
}

# What Python raises for a math error (docs/pages/api.md); anything else is a bug.
MATH_ERRORS = (ZeroDivisionError, OverflowError, ValueError)


def same(a, b):
    """a and b to the bit (0.0 is not -0.0), where a NaN matches any NaN:
    when two NaNs meet in an operation, which one comes out is the
    compiler's choice of operand order, which C leaves open."""
    return struct.pack("<d", a) == struct.pack("<d", b) or (a != a and b != b)


def outcome(V, f, *xs):
    """f applied to Values V(x) for x in xs, then backward: the result's data
    and each operand's grad, or the type of the exception raised."""
    try:
        vs = [V(x) for x in xs]
        out = f(*vs)
    except (ArithmeticError, ValueError, TypeError) as e:
        return type(e)
    out.backward()
    return [out.data] + [v.grad for v in vs]


def same_outcome(a, b):
    if isinstance(a, type) or isinstance(b, type):
        return a is b
    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
