"""pygrad.optim: SGD and Adam, each step one C call over every parameter.

    opt = pygrad.optim.SGD(model.parameters(), lr=0.01)
    for ...:
        loss = ...
        opt.zero_grad()
        loss.backward()
        opt.step()

Updates are PyTorch's (torch.optim.SGD and torch.optim.Adam, amsgrad off),
operation for operation (csrc/optim.c). Plain SGD is exactly the tutorials'
`p.data -= lr * p.grad`. Hyperparameters can be changed between steps
(`opt.lr = 0.1`). An optimizer is also what Tape.train steps in C.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _c
from .arrays import handles
from .engine import real

if TYPE_CHECKING:
    from .arrays import Values
    from .engine import Value


class Optimizer:
    """What SGD and Adam share: the parameters, the C optimizer, settings."""

    _KIND: int
    _SETTINGS: tuple[str, ...] = ()

    def __init__(self, params: Values, **settings: Any) -> None:
        self._params = handles(params)
        if self._params is None:
            raise TypeError(f"{type(self).__name__} needs pygrad Values as parameters")
        self._settings = dict(settings)
        cfg = self._config(self._settings)
        self._c, status = _c.optim_new(cfg, self._params)
        _c.check(status, type(self).__name__)

    def _config(self, s):
        numbers = {name: (bool(value) if name == "nesterov" else
                          tuple(real(b, "betas") for b in value) if name == "betas" else
                          real(value, name)) for name, value in s.items()}
        return _c.optim_config(self._KIND, numbers)

    def _check(self, s):
        """ValueError for settings torch.optim would refuse."""
        raise NotImplementedError

    @property
    def params(self) -> list[Value]:
        """The parameters, in the order given."""
        return list(self._params.values)

    @property
    def steps(self) -> int:
        """Steps taken so far (by step() and by Tape.train)."""
        return _c.optim_steps(self._c)

    def step(self) -> None:
        """One update of every parameter from its grad."""
        _c.check(_c.optim_step(self._c), "step")

    def zero_grad(self) -> None:
        """Set every parameter's grad to 0."""
        _c.check(_c.scatter(self._params, _c.GRAD), "zero_grad")

    def __getattr__(self, name: str) -> Any:  # the settings: opt.lr
        settings = self.__dict__.get("_settings", {})
        if name in settings:
            return settings[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._SETTINGS:  # a new learning rate, say: takes effect at the next step
            settings = dict(self._settings, **{name: value})
            self._check(settings)
            if _c.optim_configure(self._c, self._config(settings)) != _c.OK:
                raise ValueError(f"invalid {type(self).__name__} setting {name}={value!r}")
            self._settings = settings
        else:
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._settings.items())
        return f"{type(self).__name__}({self._params.n} parameters, {args})"


def _non_negative(settings, *names):
    for name in names:
        value = settings[name]
        if not (real(value, name) >= 0.0) or value == float("inf"):
            raise ValueError(f"invalid {name}: {value!r} (must be a finite number >= 0)")


class SGD(Optimizer):
    """torch.optim.SGD: p -= lr * g, with optional momentum, dampening,
    Nesterov momentum and weight decay (L2 added to the gradient)."""

    _KIND = _c.SGD
    _SETTINGS = ("lr", "momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, params: Values, lr: float = 0.01, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> None:
        settings = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        self._check(settings)
        super().__init__(params, **settings)

    def _check(self, s):
        _non_negative(s, "lr", "momentum", "weight_decay")
        if s["nesterov"] and (s["momentum"] <= 0 or s["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")


class Adam(Optimizer):
    """torch.optim.Adam (amsgrad off): bias-corrected first and second
    moments, with optional weight decay (L2 added to the gradient)."""

    _KIND = _c.ADAM
    _SETTINGS = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, params: Values, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        settings = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        self._check(settings)
        super().__init__(params, **settings)

    def _check(self, s):
        _non_negative(s, "lr", "eps", "weight_decay")
        if len(s["betas"]) != 2 or not all(0.0 <= real(b, "betas") < 1.0 for b in s["betas"]):
            raise ValueError(f"invalid betas: {s['betas']!r} (each must be in [0, 1))")
