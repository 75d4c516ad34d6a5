"""Drawing a graph as the tutorials do: `pygrad.draw_dot(root)`.

    dot = draw_dot(loss)        # a graphviz.Digraph (pip install 'pygrad-engine[graphviz]')
    dot.render("loss")          # graphviz's own API: loss.svg, via the `dot` program
    print(dot.source)           # the DOT text, with or without the graphviz package

Each Value is a record node `{ label | data 2.0000 | grad 0.0000 }`; a Value
made by an op gets an op node (`+`, `*`, `tanh`, ...) with an edge into it,
and its operands have edges into the op node (micrograd's draw_dot, node for
node). Works on any micrograd-style Value (`data`, `grad`, `_prev`, `_op`,
`label`), so pygrad.reference's and micrograd's graphs draw the same way.
The walk is iterative: deep graphs do not hit the recursion limit.
"""
from __future__ import annotations

from typing import Any

__all__ = ["draw_dot", "Dot"]

_RECORD_SPECIALS = str.maketrans({c: "\\" + c for c in '\\{}|<>"'})


class Dot:
    """The DOT text of a graph, for when the graphviz package is not installed:
    the part of graphviz.Digraph's API that draw_dot uses, and `.source`."""

    def __init__(self, graph_attr=None, format="svg"):
        self.format = format
        self.body = [f"\tgraph [{_attrs(**graph_attr)}]"] if graph_attr else []

    def node(self, name, label, **attrs):
        self.body.append(f'\t{name} [{_attrs(label=label, **attrs)}]')

    def edge(self, tail, head):
        self.body.append(f'\t{tail} -> {head}')

    @property
    def source(self):
        return "digraph {\n" + "\n".join(self.body) + "\n}\n"

    def __str__(self):
        return self.source

    def render(self, *args, **kwargs):
        raise ImportError("rendering needs the graphviz package: pip install graphviz "
                          "(or write .source to a file and run the `dot` program)")

    def _repr_mimebundle_(self, include=None, exclude=None):  # Jupyter shows the text
        return {"text/plain": self.source}


def _attrs(**attrs):
    return " ".join(f'{k}="{v}"' for k, v in attrs.items())


def _trace(root, max_nodes):
    """Every Value under root (root first), and the (operand, result) edges."""
    nodes, edges, seen, stack = [], [], {id(root)}, [root]
    while stack:
        v = stack.pop()
        nodes.append(v)
        if len(nodes) > max_nodes:
            raise ValueError(f"the graph has more than max_nodes={max_nodes} Values; "
                             f"draw_dot(root, max_nodes=...) draws bigger ones")
        children = sorted(v._prev, key=lambda c: (c._op, str(getattr(c, "label", "")),
                                                   float(c.data).hex()))
        for child in children:
            edges.append((child, v))
            if id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return nodes, edges


def draw_dot(root: Any, format: str = "svg", rankdir: str = "LR", max_nodes: int = 10_000) -> Any:
    """The graph under root as a graphviz.Digraph, or, without the graphviz
    package, as a Dot whose .source is the same DOT text.

    rankdir: "LR" (left to right) or "TB" (top to bottom). A graph of more
    than max_nodes Values raises ValueError instead of making a drawing no
    one can read (and graphviz cannot lay out in reasonable time)."""
    if rankdir not in ("LR", "TB"):
        raise ValueError(f"rankdir must be 'LR' or 'TB', not {rankdir!r}")
    try:
        from graphviz import Digraph
    except ImportError:
        Digraph = Dot
    dot = Digraph(format=format, graph_attr={"rankdir": rankdir})
    nodes, edges = _trace(root, max_nodes)
    name = {id(v): f"v{k}" for k, v in enumerate(nodes)}
    for v in nodes:
        label = str(getattr(v, "label", "")).translate(_RECORD_SPECIALS)
        dot.node(name[id(v)], label=f"{{ {label} | data {v.data:.4f} | grad {v.grad:.4f} }}",
                 shape="record")
        if v._op:
            dot.node(name[id(v)] + "_op", label=str(v._op).translate(_RECORD_SPECIALS))
            dot.edge(name[id(v)] + "_op", name[id(v)])
    for child, v in edges:
        dot.edge(name[id(child)], name[id(v)] + "_op")
    return dot
