"""pygrad.draw_dot: the tutorials' graph drawing, with and without graphviz."""
import re
import shutil
import subprocess
import sys

import pytest

import pygrad
from pygrad import Value, draw_dot, reference

NODE = re.compile(r'^\s*(\w+) \[(.*)\]$')
EDGE = re.compile(r'^\s*(\w+) -> (\w+)')


def parse(source):
    """{name: label} of the nodes and the set of edges of DOT text, as
    either graphviz's Digraph or pygrad's fallback writes it."""
    nodes, edges = {}, set()
    for line in source.splitlines():
        m = EDGE.match(line)
        if m:
            edges.add(m.groups())
            continue
        m = NODE.match(line)
        if m:
            label = re.search(r'label=(?:"((?:[^"\\]|\\.)*)"|(\w+))', m.group(2))
            if label:  # not the line of graph attributes
                nodes[m.group(1)] = label.group(1) or label.group(2)
    return nodes, edges


def neuron(engine):
    x1, x2 = engine.Value(2.0, label="x1"), engine.Value(0.0, label="x2")
    w1, w2 = engine.Value(-3.0, label="w1"), engine.Value(1.0, label="w2")
    b = engine.Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    o.backward()
    return o


@pytest.fixture(params=["graphviz", "no graphviz"])
def graphviz_or_not(request, monkeypatch):
    if request.param == "graphviz":
        pytest.importorskip("graphviz")
    else:
        monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz fails
    return request.param


def test_the_tutorials_neuron(graphviz_or_not):
    dot = draw_dot(neuron(pygrad))
    assert type(dot).__name__ == ("Digraph" if graphviz_or_not == "graphviz" else "Dot")
    nodes, edges = parse(dot.source)
    records = {k: v for k, v in nodes.items() if v.startswith("{")}
    ops = {k: v for k, v in nodes.items() if not v.startswith("{")}
    # 5 leaves, x1*w1, x2*w2, their sum, + b, tanh: 10 Values, 5 made by ops
    assert len(records) == 10 and sorted(ops.values()) == ["*", "*", "+", "+", "tanh"]
    assert "{ o | data 0.7071 | grad 1.0000 }" in records.values()
    assert "{ x1 | data 2.0000 | grad -1.5000 }" in records.values()
    assert "{ w2 | data 1.0000 | grad 0.0000 }" in records.values()
    # each op node feeds its Value, and each operand feeds the op node
    assert len(edges) == 5 + 10 - 1 and all(tail in nodes and head in nodes for tail, head in edges)
    assert 'rankdir' in dot.source and "LR" in dot.source


def test_the_same_drawing_for_the_reference_engine(graphviz_or_not):
    mine, ref = (parse(draw_dot(neuron(e)).source) for e in (pygrad, reference))
    assert sorted(mine[0].values()) == sorted(ref[0].values())
    assert len(mine[1]) == len(ref[1])


def test_labels_with_dot_syntax_in_them_are_escaped(graphviz_or_not):
    a = Value(1.0, label='{a|b} <c> "d" \\e')
    y = a * 2
    nodes, _ = parse(draw_dot(y).source)
    assert r'{ \{a\|b\} \<c\> \"d\" \\e | data 1.0000 | grad 0.0000 }' in nodes.values()


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot program is not installed")
def test_dot_renders_it(graphviz_or_not):
    a = Value(1.0, label='{a|b} <c> "d" \\e')
    y = (a * neuron(pygrad) + 1).relu()
    done = subprocess.run(["dot", "-Tsvg"], input=draw_dot(y).source, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "<svg" in done.stdout and "tanh" in done.stdout and "data 0.7071" in done.stdout


def test_a_deep_graph_draws_without_recursion_and_a_huge_one_is_refused():
    y = Value(0.5)
    for _ in range(20_000):
        y = y * 1.0
    nodes, edges = parse(draw_dot(y, max_nodes=50_000).source)
    assert len(nodes) == 20_001 + 20_000 + 20_000  # Values, the 1.0 leaves, op nodes
    with pytest.raises(ValueError, match="max_nodes=10000"):
        draw_dot(y)
    with pytest.raises(ValueError, match="rankdir"):
        draw_dot(y, rankdir="sideways")


def test_without_graphviz_rendering_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    dot = draw_dot(Value(1.0))
    assert str(dot) == dot.source
    with pytest.raises(ImportError, match="pip install graphviz"):
        dot.render("x")


def test_micrograds_own_values_draw_too():
    engine = pytest.importorskip("micrograd.engine")
    x, w = engine.Value(2.0), engine.Value(-3.0)
    y = (x * w + 1).relu()
    y.backward()
    nodes, edges = parse(draw_dot(y).source)
    assert sorted(v for v in nodes.values() if not v.startswith("{")) == ["*", "+", "ReLU"]
    assert "{  | data 2.0000 | grad 0.0000 }" in nodes.values() and len(edges) == 3 + 5  # op -> Value, operand -> op
