# numpy arrays of Values: numpy calls Value's operators element by element.
import numpy as np

from micrograd.engine import Value

W = np.array([[Value(0.5), Value(-1.0)], [Value(2.0), Value(0.25)]], dtype=object)
x = np.array([Value(1.5), Value(-2.0)], dtype=object)
h = W.dot(x)
y = (h * h).sum() + np.sum(x * 3)
y.backward()
print(y.data, [w.grad for w in W.ravel()], [xi.grad for xi in x])
print(int(np.argmax([v.data for v in h])), [v.data for v in h])
