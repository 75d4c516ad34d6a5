# micrograd's trace() and a draw_dot without graphviz: the picture of an MLP's
# output, counted node for node, and the lecture's expression.
import random

from micrograd.engine import Value
from micrograd.nn import MLP


class Digraph:  # the part of graphviz's API that draw_dot uses
    def __init__(self, format='svg', graph_attr=None):
        self.nodes, self.edges = [], []

    def node(self, name, label, shape=None):
        self.nodes.append(label)

    def edge(self, a, b):
        self.edges.append((a, b))


def trace(root):
    nodes, edges = set(), set()

    def build(v):
        if v not in nodes:
            nodes.add(v)
            for child in v._prev:
                edges.add((child, v))
                build(child)
    build(root)
    return nodes, edges


def draw_dot(root, format='svg', rankdir='LR'):
    nodes, edges = trace(root)
    dot = Digraph(format=format, graph_attr={'rankdir': rankdir})
    for n in nodes:
        dot.node(name=str(id(n)), label="{ data %.4f | grad %.4f }" % (n.data, n.grad), shape='record')
        if n._op:
            dot.node(name=str(id(n)) + n._op, label=n._op)
            dot.edge(str(id(n)) + n._op, str(id(n)))
    for n1, n2 in edges:
        dot.edge(str(id(n1)), str(id(n2)) + n2._op)
    return dot


random.seed(1337)
model = MLP(3, [4, 4, 1])
x = [2.0, 3.0, -1.0]
out = model(x)
out.backward()
dot = draw_dot(out)
nodes, edges = trace(out)
print("MLP:", len(nodes), "nodes", len(edges), "edges", len(dot.nodes), "boxes", len(dot.edges), "arrows")
found = sum(1 for p in model.parameters() if p in nodes)
print("parameters found in the walk:", found, "of", len(model.parameters()))
print("ops:", sorted(n._op for n in nodes if n._op))
print("boxes:", sorted(dot.nodes)[:6])

a, b = Value(2.0), Value(-3.0)
e = (a * b + a / b - (b - 1) ** 2) / 2
e.backward()
nodes, edges = trace(e)
print("expression:", len(nodes), len(edges), round(a.grad, 10), round(b.grad, 10))
