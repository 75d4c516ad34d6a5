# Gradients by finite differences against backward(), op by op.
from micrograd.engine import Value


def f(a, b, c):
    return ((a * b + c) ** 2 - a / (b + 3) + (c - a).relu() * 0.5) / (1 + b * b)


args = [1.5, -0.75, 2.0]
vals = [Value(x) for x in args]
out = f(*vals)
out.backward()
h = 1e-6
for i, v in enumerate(vals):
    up = list(args); up[i] += h
    dn = list(args); dn[i] -= h
    num = (f(*[Value(x) for x in up]).data - f(*[Value(x) for x in dn]).data) / (2 * h)
    print(i, round(v.grad, 6), round(num, 6), abs(v.grad - num) < 1e-6)
