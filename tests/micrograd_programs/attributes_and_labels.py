# Labels, extra attributes and op strings, as notebooks set them, read back by a walk.
from micrograd.engine import Value

a = Value(2.0); a.label = 'a'
b = Value(-3.0); b.label = 'b'
c = a * b; c.label = 'c'; c.note = 'a product'
d = c + a ** 2; d.label = 'd'
e = d.relu() if d.data > 0 else -d; e.label = 'e'
e.backward()
seen, order = set(), []


def walk(v):
    if v not in seen:
        seen.add(v)
        for ch in v._prev:
            walk(ch)
        order.append(v)


walk(e)
print(len(order), sorted((v._op, getattr(v, 'label', ''), v.data, v.grad) for v in order))
print(c.note, a.grad, b.grad)
