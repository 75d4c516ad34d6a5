"""A random API-sequence fuzzer: pygrad and the pure-Python reference engine
(pygrad.reference) driven in lockstep.

A session is a World of twins, one object per engine: Values, modules
(Neuron, Layer, MLP with the same weights), optimizers (pygrad's, and a
Python transcription of csrc/optim.c for the reference engine) and saved
parameter files. Each step is drawn from STEPS, a table of step kinds: a
small function that does one thing to both engines through `lockstep`, which
runs it on pygrad and on the reference and requires the same outcome (where
pygrad raises, the reference raises the same exception type). After every
step, whatever it did:
  - every twin Value and every twin module's parameters read back the same
    data and grad, to the bit (float.hex);
  - the C arena is consistent (lib.pg_debug_check() == 0);
and when a session ends and every object is dropped, the arena's live
nodes are back where they started.

Some steps make pygrad fail where the reference cannot: a node limit
(set_node_limit) or an injected allocation failure (pg_debug_fail_alloc)
around a step that builds. There pygrad may raise MemoryError; the step
is then not run on the reference, and the invariants check that the
failure changed nothing.

To add a step kind: write `def step_<name>(w)` that picks twins from the
World (w.value(), w.module(), ...), calls `w.lockstep(on_pygrad,
on_reference)` (each a function of no arguments, or of the engine module
for w.both), and registers what it makes (w.add_values, w.add_module);
then add it to STEPS with a weight, and to BUILDERS if it only makes new
objects (so the failure-injecting steps may wrap it).

Length and seed: tests/fuzzing.py (a short run here, `-m soak` for long).
"""
import copy
import gc
import io
import math
import pickle
import random
import sys
from fractions import Fraction

import numpy
import pytest

import pygrad
from pygrad import losses, reference
from pygrad._c import lib

import fuzzing  # tests/fuzzing.py
from fuzzing import ReferenceAdam, ReferenceSGD, bits, nodes_under, optimizer_settings
from forms import FORMS, USES  # tests/forms.py

ENGINES = (pygrad, reference)

# ---- numbers ------------------------------------------------------------------

SPECIAL = [0.0, -0.0, math.nan, -math.nan, math.inf, -math.inf, 5e-324, -5e-324, 1e-308,
           1e308, -1e308, 1.0, -1.0, 2.0, 0.5, -2.0, 3.0, 710.0, -746.0, 800.0, 1e16]


def number(rng):
    """A real number as a user writes one: ordinary, special, an int, a
    numpy scalar, a Fraction; mostly small, so that graphs stay finite."""
    r = rng.random()
    if r < 0.55:
        return rng.uniform(-3, 3)
    if r < 0.8:
        return rng.choice(SPECIAL)
    if r < 0.9:
        return rng.randint(-3, 3)
    return rng.choice([numpy.float64(rng.uniform(-2, 2)), numpy.int64(rng.randint(-3, 3)),
                       numpy.float32(0.25), Fraction(1, 3), True, 10**400])


def plain(x):
    """The divisor of x / c as the reference engine must see it to compute
    what pygrad does (c as a float): micrograd's x * c**-1 does numpy's or
    Fraction's arithmetic on c (np.int64(0) ** -1 is numpy's ValueError,
    np.float64(0.0) ** -1 its inf, where Python's float gives
    ZeroDivisionError). A Python int keeps Python's rules (10**400 ** -1:
    OverflowError)."""
    return x if type(x) in (int, float) else float(x)


# Operands no op accepts, and the exception each must raise (docs/pages/api.md).
INVALID = [("1.5", TypeError), (None, TypeError), (1j, TypeError), ([1.0], TypeError),
           (object(), TypeError), (numpy.array([1.0, 2.0]), TypeError), (10**400, OverflowError)]


class Raised:
    """The outcome of a call that raised."""

    def __init__(self, error):
        self.type = type(error)
        self.text = f"{type(error).__name__}: {error}"


def outcome(f):
    try:
        return f()
    except Exception as e:  # any exception is an outcome to compare
        return Raised(e)


class Mismatch(AssertionError):
    pass


# ---- the world: twins on both engines ------------------------------------------

class World:
    """The twins of one session, the steps it ran, and what pygrad may do
    differently right now (may_fail: raise MemoryError)."""

    def __init__(self, rng, where):
        self.rng = rng
        self.where = where  # "seed s, session k": for a failure message
        self.values = []  # [(pygrad Value, reference Value)]
        self.modules = []  # [(pygrad module, reference module)]
        self.optimizers = []  # [(pygrad optimizer, ReferenceSGD or ReferenceAdam)]
        self.files = []  # saved parameter files: (bytes, repr of the model)
        self.log = []  # "step k: kind detail", the session so far
        self.may_fail = False

    # -- picking and adding
    def value(self):
        return self.rng.choice(self.values)

    def module(self):
        return self.rng.choice(self.modules)

    def add_values(self, got, want):
        """Register results: a Value each, or lists of Values, or None."""
        if isinstance(got, list):
            assert isinstance(want, list) and len(got) == len(want), self.fail("output shapes differ")
            self.values += list(zip(got, want))
        elif got is not None:
            self.values.append((got, want))

    def note(self, text):
        self.log[-1] += " " + text

    def fail(self, why):
        return f"{self.where}: {why}\n" + "\n".join(self.log[-40:])

    # -- running a call on both engines
    def lockstep(self, on_pygrad, on_reference):
        """Run on_pygrad(), then on_reference(): both results, or None if
        both raised the same exception type (or pygrad raised MemoryError
        where it may). Anything else is a Mismatch."""
        got = outcome(on_pygrad)
        if isinstance(got, Raised) and got.type is MemoryError and self.may_fail:
            self.note("(MemoryError)")
            return None
        want = outcome(on_reference)
        if isinstance(got, Raised) or isinstance(want, Raised):
            g = got.type if isinstance(got, Raised) else None
            r = want.type if isinstance(want, Raised) else None
            if g is not r:
                raise Mismatch(self.fail(f"pygrad {getattr(got, 'text', 'returned')} but the "
                                         f"reference {getattr(want, 'text', 'returned')}"))
            self.note(f"({g.__name__})")
            return None
        return got, want

    def both(self, f):
        """lockstep of f(engine) on pygrad and on the reference."""
        return self.lockstep(lambda: f(pygrad), lambda: f(reference))

    # -- the invariants
    def check(self):
        for k, (v, r) in enumerate(self.values):
            if bits(v.data) != bits(r.data) or bits(v.grad) != bits(r.grad):
                raise Mismatch(self.fail(f"value {k}: pygrad {v!r}, reference {r!r}"))
        for k, (m, r) in enumerate(self.modules):
            for i, (p, q) in enumerate(zip(m.parameters(), r.parameters())):
                if bits(p.data) != bits(q.data) or bits(p.grad) != bits(q.grad):
                    raise Mismatch(self.fail(f"module {k} ({m!r}) parameter {i}: "
                                             f"pygrad {p!r}, reference {q!r}"))
        bad = lib.pg_debug_check()
        if bad:
            raise Mismatch(self.fail(f"pg_debug_check found {bad} broken invariants"))


def inputs_for(w, nin):
    """nin inputs for a module, for each engine: numbers, twin Values, or a mix."""
    mix = w.rng.choice(["numbers", "values", "mixed"]) if w.values else "numbers"
    pairs = []
    for _ in range(nin):
        if mix == "numbers" or (mix == "mixed" and w.rng.random() < 0.5):
            x = number(w.rng)
            pairs.append((x, x))
        else:
            pairs.append(w.value())
    return [a for a, _ in pairs], [b for _, b in pairs]


def _first_neuron(m):
    """The first neuron of a module of either engine (pygrad.reference has its own nn)."""
    if hasattr(m, "w"):
        return m
    if hasattr(m, "neurons"):
        return m.neurons[0]
    return m.layers[0].neurons[0]


# ---- the step kinds ------------------------------------------------------------

def step_leaf(w):
    x = number(w.rng)
    w.note(repr(x))
    out = w.both(lambda e: e.Value(x))
    if out:
        w.add_values(*out)


def step_op(w):
    form = w.rng.choice(sorted(FORMS))
    (x, rx), (y, ry) = w.value(), w.value()
    c = number(w.rng)
    w.note(f"{form} c={c!r}")
    if form == "c / x" and isinstance(c, int) and abs(c) > 2**1023:
        c = float(c % 7)  # known: test_a_huge_int_over_a_zero_value_raises_what_micrograd_raises
    rc = plain(c) if form == "x / c" else c
    out = w.lockstep(lambda: FORMS[form](x, y, c), lambda: FORMS[form](rx, ry, rc))
    if out:
        w.add_values(*out)


USED = sorted(u for u in USES if "pow(" not in u)  # (pow's modulo: test_properties.py)


def step_invalid_operand(w):
    """An operand no op takes: pygrad raises the spec's exception (the
    reference engine is not the judge here: numpy arrays broadcast over its
    Values, and its .data takes anything) and nothing changes."""
    x, _ = w.value()
    use = w.rng.choice(USED)
    bad, exc = w.rng.choice(INVALID)
    if use == "b / x" and type(bad) is int and x.data == 0.0:
        exc = ZeroDivisionError  # micrograd's b * x**-1: x**-1 fails first (a test below)
    w.note(f"{use} b={bad!r}")
    got = outcome(lambda: USES[use](x, bad))
    if not (isinstance(got, Raised) and got.type is exc):
        raise Mismatch(w.fail(f"{use} with b={bad!r} gave {getattr(got, 'text', got)!r}, not {exc}"))


def step_assign(w):
    (v, r), field, x = w.value(), w.rng.choice(["data", "grad"]), number(w.rng)
    w.note(f".{field} = {x!r}")
    if isinstance(x, int) and not -(2**1023) < x < 2**1023:  # the reference takes anything
        got = outcome(lambda: setattr(v, field, x))
        assert isinstance(got, Raised) and got.type is OverflowError, w.fail(f"{x!r} as {field}")
        return
    w.lockstep(lambda: setattr(v, field, x), lambda: setattr(r, field, float(x)))


def step_backward(w):
    v, r = w.value()
    w.lockstep(v.backward, r.backward)


def step_local_backward(w):
    v, r = w.value()
    w.lockstep(v._backward, r._backward)


# A walk over pygrad's _prev meets every node as one Python object (the
# tests at the end of this file), so the walk tells nodes apart by identity,
# as micrograd's build_topo does. (WALK_BY_NODE = True tells them apart by C
# handle instead, for hunting a bug in that.)
WALK_BY_NODE = False


def _node(p):
    return p._id if WALK_BY_NODE else id(p)


def _same_op(mine, micrograds):
    """The same _op; where the walk meets a new object for a node
    (WALK_BY_NODE), a ** k shows k as C keeps it (2.0 as 2), not as written."""
    if mine == micrograds:
        return True
    written = {"True": "1", "False": "0"}.get(micrograds[2:], micrograds[2:])  # x ** True
    try:
        return WALK_BY_NODE and mine[:2] == micrograds[:2] == "**" and \
            float(mine[2:]) == float(Fraction(written))
    except ValueError:
        return False


def _match_children(w, p, r):
    """r's distinct children (operand order), each with its pygrad twin
    among p._prev (put in operand order by the C library's pg_child); a
    Mismatch if p's children are not r's."""
    handles = list(dict.fromkeys(h for h in (lib.pg_child(p._id, 0), lib.pg_child(p._id, 1)) if h > 0))
    by_handle = {q._id: q for q in p._prev}
    got = [by_handle.get(h) for h in handles]
    want = list(dict.fromkeys(r._children))
    if (len(got) != len(want) or None in got or len(by_handle) != len(handles)
            or (not WALK_BY_NODE and len(p._prev) != len(handles))):
        raise Mismatch(w.fail(f"a walk over _prev: {p!r} has children {list(p._prev)}, "
                              f"micrograd's graph {want}"))
    return list(zip(got, want))


def step_walk_backward(w):
    """The tutorials' backward by hand: a walk over _prev with a visited
    set (build_topo), grads zeroed, the root's set to 1, then every node's
    _backward() in reverse order. The walk on pygrad must meet the nodes
    and edges of micrograd's graph, with their ops and data, in the order
    the reference engine's walk meets its own."""
    p_root, r_root = w.value()
    met = {}  # pygrad node key -> reference node
    order = []
    stack = [(p_root, r_root, None)]  # build_topo's recursion, as a loop (no closure cycle)
    while stack:
        p, r, children = stack.pop()
        if children is None:  # first met: build_topo's visit(p)
            if _node(p) in met:
                if met[_node(p)] is not r:
                    raise Mismatch(w.fail(f"a walk over _prev: {p!r} is two of micrograd's nodes"))
                continue
            met[_node(p)] = r
            if not _same_op(p._op, r._op) or bits(p.data) != bits(r.data):
                raise Mismatch(w.fail(f"a walk over _prev: {p!r} ({p._op!r}) is micrograd's "
                                      f"{r!r} ({r._op!r})"))
            twins = {id(c): q for q, c in _match_children(w, p, r)}
            children = iter([(twins[id(c)], c) for c in r._children])
        child = next(children, None)
        if child is None:
            order.append((p, r))
        else:
            stack += [(p, r, children), (*child, None)]
    w.note(f"{len(order)} nodes")
    for p, r in order:
        p.grad = r.grad = 0.0
    p_root.grad = r_root.grad = 1.0
    for p, r in reversed(order):
        w.lockstep(p._backward, r._backward)


def _supported(feature):
    """Whether pygrad has a feature the lead is adding (the steps below wait for it)."""
    v = pygrad.Value(0.0)
    try:
        feature(v)
    except (TypeError, AttributeError):
        return False
    return True


# micrograd's custom op: out = Value(data, (x, y), 'op'); out._backward = a closure.
def _custom_op_runs(v):
    out, ran = pygrad.Value(1.0, (v,), "f"), []
    out._backward = lambda: ran.append(1)
    out.backward()
    if not ran:
        raise TypeError("backward() does not run a custom _backward")


CUSTOM_OPS = _supported(_custom_op_runs)


def step_custom_op(w):
    """A user's op micrograd's way, on both engines: a product with its own
    _backward, mixed into graphs of the built-in ops."""
    if not CUSTOM_OPS:
        return
    (x, rx), (y, ry) = w.value(), w.value()

    def make(V, x, y):
        out = V(x.data * y.data, (x, y), "mul_by_hand")

        def _backward():
            x.grad += y.data * out.grad
            y.grad += x.data * out.grad
        out._backward = _backward
        return out

    out = w.lockstep(lambda: make(pygrad.Value, x, y), lambda: make(reference.Value, rx, ry))
    if out:
        w.add_values(*out)


# docs/pages/api.md's numbers where Python expects numbers: float(v), v < w, ...
NUMBER_PROTOCOL = _supported(lambda v: (float(v), v < v))
READS = {"float": float, "round": round, "format": lambda v: format(v, ".6g"),
         "<": lambda v, u: v < u, "<=": lambda v, u: v <= u, ">": lambda v, u: v > u,
         ">=": lambda v, u: v >= u}


def step_number_protocol(w):
    """Each read gives what Python gives for the data (the oracle: float's
    own rules, raising as they raise: round(nan) is ValueError)."""
    if not NUMBER_PROTOCOL:
        return
    name = w.rng.choice(sorted(READS))
    (v, _), (u, _) = w.value(), w.value()
    other = w.rng.choice([u, number(w.rng)])
    args, plain_args = ((v,), (v.data,)) if name in ("float", "round", "format") else \
        ((v, other), (v.data, other.data if isinstance(other, pygrad.Value) else other))
    w.note(name)
    got, want = outcome(lambda: READS[name](*args)), outcome(lambda: READS[name](*plain_args))
    if name in ("<", "<=", ">", ">=") and not isinstance(want, Raised):
        want = bool(want)  # a comparison gives a bool (numpy's scalars give numpy.bool_)
    same = (got.type is want.type if isinstance(want, Raised) else
            not isinstance(got, Raised) and type(got) is type(want) and
            (bits(got) == bits(want) if isinstance(want, float) else got == want))
    if not same:
        raise Mismatch(w.fail(f"{name}{args!r}: {getattr(got, 'text', got)!r}, Python gives "
                              f"{getattr(want, 'text', want)!r}"))


MODULE_KINDS = ["Neuron", "Layer", "MLP"]
ACTS = pygrad.nn.ACTIVATIONS


def step_module(w):
    kind = w.rng.choice(MODULE_KINDS)
    act, bias, seed = w.rng.choice(ACTS), w.rng.choice(["zero", "uniform"]), w.rng.randrange(10**6)
    nin = w.rng.randint(0, 4) if w.rng.random() < 0.2 else w.rng.randint(1, 4)
    if kind == "Neuron":
        args, kwargs = (nin,), dict(act=act, bias=bias)
    elif kind == "Layer":
        args, kwargs = (nin, w.rng.randint(1, 4)), dict(act=act, bias=bias)
    else:
        nouts = [w.rng.randint(1, 4) for _ in range(w.rng.randint(1, 3))]
        args, kwargs = (nin, nouts), dict(act=act, out_act=w.rng.choice(ACTS), bias=bias)
    w.note(f"{kind}{args} {kwargs}")

    def make(engine):
        random.seed(seed)
        return getattr(engine, kind)(*args, **kwargs)

    out = w.both(make)
    if out:
        w.modules.append(out)


def step_forward(w):
    """A module's one-call forward (pygrad) against the op-by-op one."""
    m, r = w.module()
    nin = len(_first_neuron(m).w)
    xs, rxs = inputs_for(w, nin)
    shape = w.rng.choice(["list", "tuple", "iter", "array"])
    if shape == "array" and not all(type(x) is float for x in xs):
        shape = "list"  # (an array of numbers only: one of Values is not a 1-D float array)
    w.note(f"{m!r} on a {shape}")
    wrap = {"list": list, "tuple": tuple, "iter": iter, "array": numpy.array}[shape]
    out = w.lockstep(lambda: m(wrap(xs)), lambda: r(wrap(rxs)))
    if out:
        w.add_values(*out)


def step_module_edit(w):
    """A change to a module's structure the one-call forward must see: a
    weight replaced by a twin Value, a weight's data set, a neuron added."""
    m, r = w.module()
    n, rn = _first_neuron(m), _first_neuron(r)
    choice = w.rng.random()
    leaves = [pair for pair in w.values if not pair[1]._children]  # (a copy of a module
    if choice < 0.4 and n.w and leaves:  # copies a weight as a leaf: see step_copy)
        i = w.rng.randrange(len(n.w))
        v, rv = w.rng.choice(leaves)
        w.note(f"{m!r}: w[{i}] = a twin leaf")
        n.w[i], rn.w[i] = v, rv
    elif choice < 0.8:
        params = list(zip(m.parameters(), r.parameters()))
        if params:
            (p, q), x = w.rng.choice(params), w.rng.uniform(-2, 2)
            w.note(f"a parameter's data = {x!r}")
            p.data, q.data = x, x
    elif isinstance(m, pygrad.Layer):
        seed = w.rng.randrange(10**6)
        w.note(f"{m!r}: a neuron appended")
        for layer, engine in ((m, pygrad), (r, reference)):
            random.seed(seed)
            layer.neurons.append(engine.Neuron(len(n.w), act=n.act, bias="uniform"))


def step_zero_grad(w):
    m, r = w.module()
    w.lockstep(m.zero_grad, r.zero_grad)


LOSSES = ["sum_squares", "mse", "root_sum_squares", "hinge", "cross_entropy"]


def step_loss(w):
    kind = w.rng.choice(LOSSES)
    k = w.rng.randint(1, 4)
    picked = [w.value() for _ in range(k)]
    preds, rpreds = [p for p, _ in picked], [r for _, r in picked]
    w.note(kind)
    if kind == "cross_entropy":
        rows = w.rng.choice([1, k]) if k > 1 else 1
        if rows > 1 and k % rows == 0:
            n = k // rows
            cls = [w.rng.randrange(n) for _ in range(rows)]
            out = w.lockstep(lambda: losses.cross_entropy([preds[i * n:(i + 1) * n] for i in range(rows)], cls),
                             lambda: losses.cross_entropy([rpreds[i * n:(i + 1) * n] for i in range(rows)], cls))
        else:
            c = w.rng.randrange(k)
            out = w.lockstep(lambda: losses.cross_entropy(preds, c),
                             lambda: losses.cross_entropy(rpreds, c))
    elif kind == "hinge":
        ys = [w.rng.choice([-1, 1]) for _ in range(k)]
        params = w.module() if w.modules and w.rng.random() < 0.5 else ((), ())
        alpha = w.rng.choice([1e-4, 0.0, 1.0])
        pm, rm = (params[0].parameters(), params[1].parameters()) if params[0] != () else ((), ())
        out = w.lockstep(lambda: losses.hinge(preds, ys, pm, alpha),
                         lambda: losses.hinge(rpreds, ys, rm, alpha))
    else:
        ys = [number(w.rng) for _ in range(k)]
        out = w.lockstep(lambda: getattr(losses, kind)(preds, ys), lambda: getattr(losses, kind)(rpreds, ys))
    if out:
        w.add_values(*out)


def step_optimizer(w):
    m, r = w.module()
    kind = w.rng.choice(["SGD", "Adam"])
    s = optimizer_settings(w.rng, kind)
    w.note(f"{kind} {s} over {m!r}")
    ref = ReferenceSGD if kind == "SGD" else ReferenceAdam
    out = w.lockstep(lambda: getattr(pygrad.optim, kind)(m.parameters(), **s),
                     lambda: ref(r.parameters(), **s))
    if out:
        w.optimizers.append(out)


def step_optimizer_step(w):
    o, r = w.rng.choice(w.optimizers)
    w.lockstep(o.step, r.step)
    if o.steps != r.steps:
        raise Mismatch(w.fail(f"optimizer steps {o.steps} != {r.steps}"))


def step_optimizer_zero_grad(w):
    o, r = w.rng.choice(w.optimizers)
    w.lockstep(o.zero_grad, r.zero_grad)


def step_optimizer_setting(w):
    """A new setting between steps: taken as given, or refused with the
    old settings kept."""
    o, r = w.rng.choice(w.optimizers)
    kind = type(o).__name__
    name = w.rng.choice(["lr", "weight_decay"] + (["momentum", "dampening"] if kind == "SGD" else ["eps"]))
    value = w.rng.choice([0.0, 0.05, 0.5, -1.0, math.nan, math.inf])
    w.note(f"{kind}.{name} = {value!r}")
    trial = dict(r.settings, **{name: value})
    # pygrad.optim's rule: these finite and >= 0, dampening finite, and
    # Nesterov momentum needs a momentum > 0 and no dampening.
    finite = [k for k in ("lr", "weight_decay", "momentum", "eps") if k in trial]
    valid = (all(0 <= trial[k] < math.inf for k in finite)
             and math.isfinite(trial.get("dampening", 0.0))
             and not (trial.get("nesterov") and (trial["momentum"] <= 0 or trial["dampening"] != 0)))
    got = outcome(lambda: setattr(o, name, value))
    if valid:
        if isinstance(got, Raised):
            raise Mismatch(w.fail(f"a valid setting was refused: {got.text}"))
        r.settings[name] = float(value)
    elif not (isinstance(got, Raised) and got.type is ValueError):
        raise Mismatch(w.fail(f"an invalid setting gave {getattr(got, 'text', 'no error')}"))


def step_arrays(w):
    """get_data/get_grad/set_data/set_grad over twin Values or a module."""
    if w.modules and w.rng.random() < 0.5:
        m, r = w.module()
        ours, theirs = m, r.parameters()
        n = len(theirs)
    else:
        picked = [w.value() for _ in range(w.rng.randint(0, 5))]
        ours, theirs = [p for p, _ in picked], [r for _, r in picked]
        n = len(theirs)
    field = w.rng.choice(["data", "grad"])
    what = w.rng.choice(["get", "set", "fill"])
    w.note(f"{what}_{field} of {n}")
    if what == "get":
        out = w.lockstep(lambda: getattr(pygrad, f"get_{field}")(ours).tolist(),
                         lambda: [getattr(v, field) for v in theirs])
        if out and list(map(bits, out[0])) != list(map(bits, out[1])):
            raise Mismatch(w.fail(f"get_{field}: {out[0]} != {out[1]}"))
        return
    src = [w.rng.uniform(-2, 2) for _ in range(n)] if what == "set" else w.rng.uniform(-2, 2)

    def on_reference():
        for i, v in enumerate(theirs):
            setattr(v, field, src[i] if isinstance(src, list) else src)

    w.lockstep(lambda: getattr(pygrad, f"set_{field}")(ours, numpy.array(src)), on_reference)


def _reference_leaf_copy(r):
    """What pygrad's copy, deepcopy and pickle of a Value give: a new leaf
    with the same data, grad and label."""
    v = reference.Value(r.data, label=r.label)
    v.grad = r.grad
    return v


def _copier(how, protocol):
    if how == "pickle":
        return lambda x: pickle.loads(pickle.dumps(x, protocol))
    return getattr(copy, how)


def step_copy(w):
    how = w.rng.choice(["copy", "deepcopy", "pickle"])
    if w.modules and w.rng.random() < 0.4:
        m, r = w.module()
        w.note(f"{how} of {m!r}")
        dump = _copier(how, pickle.HIGHEST_PROTOCOL)
        out = w.lockstep(lambda: dump(m), lambda: copy.deepcopy(r) if how != "copy" else copy.copy(r))
        if out:
            w.modules.append(out)
        return
    v, r = w.value()
    w.note(how)
    protocol = w.rng.randrange(pickle.HIGHEST_PROTOCOL + 1)
    dump = _copier(how, protocol)
    out = w.lockstep(lambda: dump(v), lambda: _reference_leaf_copy(r))
    if out:
        w.add_values(*out)


def _saved_numbers(data):
    """The parameters a file holds, as plain numpy reads them: the oracle for
    save and load, which both engines share."""
    with numpy.load(io.BytesIO(data), allow_pickle=False) as z:
        return list(map(bits, z["data"].tolist()))


def step_save(w):
    m, r = w.module()
    side = w.rng.choice([m, r])
    buf = io.BytesIO()
    side.save(buf)
    w.note(f"{side!r} from {'pygrad' if side is m else 'the reference'}")
    if _saved_numbers(buf.getvalue()) != [bits(p.data) for p in side.parameters()]:
        raise Mismatch(w.fail("the file does not hold the model's numbers"))
    w.files.append((buf.getvalue(), repr(m)))


def step_load(w):
    data, shape = w.rng.choice(w.files)
    m, r = w.module()
    w.note(f"a file of {shape} into {m!r}")
    if w.lockstep(lambda: m.load(io.BytesIO(data)), lambda: r.load(io.BytesIO(data))):
        params = m.parameters()
        last = dict(zip(map(id, params), _saved_numbers(data)))  # a weight used twice: the last
        if [bits(p.data) for p in params] != [last[id(p)] for p in params]:
            raise Mismatch(w.fail("the model does not hold the file's numbers"))


def step_drop(w):
    pools = [p for p in (w.values, w.modules, w.optimizers, w.files) if p]
    pool = w.rng.choice(pools)
    for _ in range(w.rng.randint(1, 3)):
        if pool:
            del pool[w.rng.randrange(len(pool))]


# Steps that only make new objects: the failure-injecting steps wrap them.
BUILDERS = [step_leaf, step_op, step_forward, step_loss, step_copy, step_module, step_optimizer,
            step_custom_op]


def _a_builder(w):
    return w.rng.choice([s for s in BUILDERS if _ready(w, s)])


def _failing(w, step, arm, disarm):
    """step(w) with a failure armed (arm()) where pygrad may raise
    MemoryError, which must change nothing; disarm() after."""
    arm()
    w.may_fail = True
    try:
        step(w)
    finally:
        w.may_fail = False
        disarm()


def step_node_limit(w):
    """A builder under a node limit a few nodes above the live count."""
    limit = pygrad.live_nodes() + w.rng.randint(0, 12)
    builder = _a_builder(w)
    w.note(f"limit {limit}: {builder.__name__}")
    _failing(w, builder, lambda: pygrad.set_node_limit(limit), lambda: pygrad.set_node_limit(0))


def step_fail_alloc(w):
    """A builder, or backward, with the C library's n-th allocation failing."""
    n = w.rng.randint(1, 4)
    step = w.rng.choice([_a_builder(w)] + ([step_backward] if w.values else []))
    w.note(f"allocation {n} fails: {step.__name__}")
    _failing(w, step, lambda: lib.pg_debug_fail_alloc(n), lambda: lib.pg_debug_fail_alloc(0))


V, M, O, F = "values", "modules", "optimizers", "files"
#: name -> (weight, function, what it needs in the World: pools that must not be empty)
STEPS = {
    "leaf": (6, step_leaf, ()),
    "op": (20, step_op, (V,)),
    "invalid_operand": (2, step_invalid_operand, (V,)),
    "assign": (3, step_assign, (V,)),
    "backward": (4, step_backward, (V,)),
    "local_backward": (3, step_local_backward, (V,)),
    "walk_backward": (2, step_walk_backward, (V,)),
    "custom_op": (2, step_custom_op, (V,)),  # (these two wait for the lead's features:
    "number_protocol": (2, step_number_protocol, (V,)),  # each returns at once until then)
    "module": (2, step_module, ()),
    "forward": (6, step_forward, (M,)),
    "module_edit": (2, step_module_edit, (M,)),
    "zero_grad": (2, step_zero_grad, (M,)),
    "loss": (3, step_loss, (V,)),
    "optimizer": (1, step_optimizer, (M,)),
    "optimizer_step": (3, step_optimizer_step, (O,)),
    "optimizer_zero_grad": (1, step_optimizer_zero_grad, (O,)),
    "optimizer_setting": (1, step_optimizer_setting, (O,)),
    "arrays": (2, step_arrays, (V,)),
    "copy": (2, step_copy, (V,)),
    "save": (1, step_save, (M,)),
    "load": (1, step_load, (F, M)),
    "node_limit": (2, step_node_limit, ()),
    "fail_alloc": (2, step_fail_alloc, ()),
    "drop": (3, step_drop, (V,)),
}
_NEEDS = {function: needs for _, function, needs in STEPS.values()}


def _ready(w, step):
    return all(getattr(w, pool) for pool in _NEEDS[step])


def run_session(w, steps):
    names = list(STEPS)
    weights = [STEPS[n][0] for n in names]  # (drawn here: one stream of choices per session)
    for k in range(steps):
        name = w.rng.choices(names, weights)[0]
        step = STEPS[name][1]
        if not _ready(w, step):  # (what it needs is not there yet: a new Value instead)
            step, name = step_leaf, "leaf"
        w.log.append(f"step {k}: {name}")
        step(w)
        w.check()


def run_fuzzer(total, seed, tally, session_length=80):
    gc.collect()
    baseline = pygrad.live_nodes()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # the reference engine recurses over graphs
    done, sessions = 0, 0
    try:
        while done < total:
            rng = random.Random(f"{seed}:{sessions}")
            w = World(rng, f"PYGRAD_FUZZ_SEED={seed}, session {sessions}")
            n = min(session_length, total - done)
            run_session(w, n)
            done += n
            sessions += 1
            del w
            # Once the World is gone, its nodes are: pygrad's Values make no
            # cycles but those of custom ops (whose _backward closes over the
            # Value, as on micrograd), freed by the collector.
            if CUSTOM_OPS:
                gc.collect()
            assert pygrad.live_nodes() == baseline, f"seed {seed}, session {sessions - 1}: nodes leaked"
            if sessions % 10 == 0:
                gc.collect()
    finally:
        sys.setrecursionlimit(limit)
        pygrad.set_node_limit(0)
        lib.pg_debug_fail_alloc(0)
    tally["hypothesis examples: API fuzzer steps, pygrad and the reference in lockstep"] += done
    tally["of which: API fuzzer sessions, each back to the baseline"] += sessions


@fuzzing.runs
def test_random_api_sequences_match_the_reference_engine(request, tally, run):
    run_fuzzer(fuzzing.length(request, 5000), fuzzing.seed(), tally)


# ---- bugs the fuzzer found, in files of others: each fails today --------------

def walk(root):
    """Every Python object a walk over _prev meets (micrograd's build_topo)."""
    return nodes_under(root, lambda v: v._prev)


def _held_in_walk(root, held):
    return any(v is held for v in walk(root))


@pytest.mark.parametrize("build", ["a - b", "a / b", "sum_squares", "Neuron"])
def test_a_walk_over_prev_meets_a_held_value_as_that_very_object(build):
    a, b = pygrad.Value(2.0), pygrad.Value(3.0)
    neuron = pygrad.Neuron(1)
    root = {"a - b": lambda: a - b, "a / b": lambda: a / b,
            "sum_squares": lambda: losses.sum_squares([b], [1.0]),
            "Neuron": lambda: neuron([b])}[build]()
    assert _held_in_walk(root, b)


def test_a_walk_over_prev_meets_each_node_once():
    random.seed(0)
    o1, o2 = pygrad.MLP(1, [1, 2])([1.0])  # the hidden neuron's output feeds both outputs
    nodes = walk(o1 + o2)
    assert len(nodes) == len({v._id for v in nodes})


def test_a_huge_int_over_a_zero_value_raises_what_micrograd_raises():
    def raised(V):
        try:
            10**400 / V(0.0)
        except Exception as e:
            return type(e)
    assert raised(pygrad.Value) is raised(reference.Value) is ZeroDivisionError


def _constants(root, held):
    """The data of every leaf under root but the held Values: the numbers a
    graph bakes in (nodes told apart by C handle on pygrad, see WALK_BY_NODE)."""
    key = (lambda v: v._id) if isinstance(root, pygrad.Value) else id
    skip = {key(v) for v in held}
    return sorted(bits(v.data) for v in nodes_under(root, lambda v: v._prev, key)
                  if not v._prev and key(v) not in skip)


def test_cross_entropy_of_a_nan_logit_bakes_the_documented_constant():
    row = [math.nan, -math.inf]
    ours = [pygrad.Value(x) for x in row]
    theirs = [reference.Value(x) for x in row]
    assert _constants(losses.cross_entropy(ours, 0), ours) == \
        _constants(losses.cross_entropy(theirs, 0), theirs)
