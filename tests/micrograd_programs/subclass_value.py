# A subclass of Value that adds ops, and a Value of it in a bigger graph.
import math

from micrograd.engine import Value


class Val(Value):
    def sigmoid(self):
        s = 1 / (1 + math.exp(-self.data))
        out = Val(s, (self,), 'sigmoid')

        def _backward():
            self.grad += s * (1 - s) * out.grad
        out._backward = _backward
        return out

    def square(self):
        out = Val(self.data ** 2, (self,), 'sq')

        def _backward():
            self.grad += 2 * self.data * out.grad
        out._backward = _backward
        return out


a, b = Val(0.5), Val(-1.5)
c = Val((a * b).data, (a, b), 'mulx')


def _backward():
    a.grad += b.data * c.grad
    b.grad += a.data * c.grad


c._backward = _backward
d = c.sigmoid().square() + a.sigmoid() * 3 - b
d.backward()
print(type(c).__name__, type(a * b).__name__, d.data, a.grad, b.grad, c.grad)
print(sorted(v._op for v in d._prev))
