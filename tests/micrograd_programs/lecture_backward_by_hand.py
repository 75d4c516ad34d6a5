# The lecture (seed 004): a neuron with a tanh of our own, grads set and run
# by hand, node by node, then by a topological sort over _prev.
# (the lecture's Value: it takes label=, which the micrograd package's does not)
import math

from micrograd.engine import Value


def tanh(self):
    x = self.data
    t = (math.exp(2 * x) - 1) / (math.exp(2 * x) + 1)
    out = Value(t, (self,), 'tanh')

    def _backward():
        self.grad += (1 - t**2) * out.grad
    out._backward = _backward
    return out


Value.tanh = tanh

x1 = Value(2.0, label='x1')
x2 = Value(0.0, label='x2')
w1 = Value(-3.0, label='w1')
w2 = Value(1.0, label='w2')
b = Value(6.8813735870195432, label='b')
x1w1 = x1 * w1; x1w1.label = 'x1*w1'
x2w2 = x2 * w2; x2w2.label = 'x2*w2'
x1w1x2w2 = x1w1 + x2w2; x1w1x2w2.label = 'x1*w1 + x2*w2'
n = x1w1x2w2 + b; n.label = 'n'
o = n.tanh(); o.label = 'o'

o.grad = 1.0
o._backward()
n._backward()
b._backward()
x1w1x2w2._backward()
x2w2._backward()
x1w1._backward()
print("by hand:", [(v.label, round(v.grad, 10)) for v in (x1, x2, w1, w2, b, n)])

for v in (x1, x2, w1, w2, b, x1w1, x2w2, x1w1x2w2, n, o):
    v.grad = 0.0
topo = []
visited = set()


def build_topo(v):
    if v not in visited:
        visited.add(v)
        for child in v._prev:
            build_topo(child)
        topo.append(v)


build_topo(o)
o.grad = 1.0
for node in reversed(topo):
    node._backward()
print("topo:", len(topo), [(v.label, round(v.grad, 10)) for v in (x1, x2, w1, w2, b)])

for v in topo:
    v.grad = 0.0
o.backward()
print("backward():", [(v.label, round(v.grad, 10)) for v in (x1, x2, w1, w2, b)])
