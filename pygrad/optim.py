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
(`opt.lr = 0.1`). An optimizer is also what Tape.train steps in C. The rules
for valid settings are written once, in csrc/optim.c (pg_optim_check): a bad
setting is a ValueError with that rule, here or from C alike.

Checkpoints: `opt.state_dict()` and `opt.load_state_dict(sd)`, in
torch.optim's shape. An optimizer's parameters are, to torch, one parameter:
a vector of n scalars (index 0), each buffer a float64 numpy array of n in
the order of the parameters given:

    SGD:  {"state": {0: {"step": 7, "momentum_buffer": array([...]) or None}},
           "param_groups": [{"lr": 0.1, "momentum": 0.9, "dampening": 0.0,
                             "weight_decay": 0.0, "nesterov": False, "params": [0]}]}
    Adam: {"state": {0: {"step": 7, "exp_avg": array([...]), "exp_avg_sq": array([...])}},
           "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08,
                             "weight_decay": 0.0, "params": [0]}]}

SGD's momentum buffer is None until a step with momentum has filled it. The
dict holds copies (changing it changes nothing). load_state_dict sets the
settings and the state together, and takes a state that fits: pygrad's own of
the same kind and size, or torch.optim.SGD's or Adam's over one float64
parameter of n elements (an empty "state" is a fresh one; torch's extra
options are taken at the values pygrad's update equals, such as
maximize=False and amsgrad=False). Anything else raises ValueError (TypeError
for a non-number) and changes nothing. copy.copy gives an optimizer over the
same parameters; copy.deepcopy and pickle one over copies of them (a model
copied or pickled together with it stays its model); all three with the same
settings and state, from then on independent.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
else:  # (imported at its first use: `import pygrad` loads no numpy)
    from ._lazy import numpy as np

from . import _c
from .arrays import handles
from .engine import real, type_name

if TYPE_CHECKING:
    from .arrays import Values
    from .engine import Value

#: torch.optim's options that pygrad has no setting for, at the values under
#: which torch's update is pygrad's (foreach and fused pick torch's kernels).
TORCH_OPTIONS: dict[str, tuple[Any, ...]] = {
    "maximize": (False,), "amsgrad": (False,), "capturable": (False,), "differentiable": (False,),
    "decoupled_weight_decay": (False,), "foreach": (None, False, True), "fused": (None, False)}


class Optimizer:
    """What SGD and Adam share: the parameters, the C optimizer, settings, state."""

    _KIND: int  # the C optimizer's kind (SGD, ADAM)
    _SETTINGS: tuple[str, ...] = ()

    def __init__(self, params: Values, **settings: Any) -> None:
        self._params = handles(params)
        if self._params is None:  # a pygrad.reference model's
            raise TypeError(f"{type(self).__name__} needs pygrad Values as parameters")
        cfg, self._settings = self._config(settings)
        self._c, status = _c.optim_new(cfg, self._params)
        _c.check(status, type(self).__name__)

    def _config(self, settings):
        """(the C config, the settings as numbers) for settings: TypeError for
        a non-number, ValueError for an invalid one (by the C library's rules)."""
        numbers: dict[str, Any] = {}
        for name, value in settings.items():
            if name == "nesterov":
                numbers[name] = bool(value)
            elif name == "betas":
                numbers[name] = tuple(real(b, "betas") for b in value)
                if len(numbers[name]) != 2:
                    raise ValueError(f"{type(self).__name__}(betas={value!r}): betas must be a pair")
            else:
                numbers[name] = real(value, name)
        cfg = _c.optim_config(self._KIND, numbers)
        bad = _c.optim_check(cfg)
        if bad is not None:
            field, rule = bad
            name = "betas" if field.startswith("beta") else field
            raise ValueError(f"{type(self).__name__}({name}={settings[name]!r}): {field} must be {rule}")
        return cfg, numbers

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

    # ---- state -------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The settings and the state, in torch.optim's shape (the module's docstring)."""
        n = self._params.n
        m, v = np.empty(n), np.empty(n)
        status, steps, has_momentum = _c.optim_get_state(self._c, m, v)
        _c.check(status, f"{type(self).__name__}.state_dict")
        return {"state": {0: {"step": steps, **self._buffers(has_momentum, m, v)}},
                "param_groups": [{**self._settings, "params": [0]}]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Set the settings and the state from a state_dict() that fits (the
        module's docstring); ValueError, with nothing changed, if it does not."""
        settings, entry = self._read(state_dict)
        cfg, numbers = self._config(settings)
        steps, has_momentum, m, v = self._state_of(entry)
        status = _c.optim_set_state(self._c, steps, has_momentum, m, v)  # checks, then changes
        _c.check(status, f"{type(self).__name__}.load_state_dict", note="a second moment below 0")
        _c.check(_c.optim_configure(self._c, cfg), f"{type(self).__name__}.load_state_dict")
        self._settings = numbers

    def _buffers(self, has_momentum, m, v):
        """The state's buffers by torch's names."""
        raise NotImplementedError

    def _state_of(self, entry):
        """(steps, has a momentum buffer, m, v) of a state entry, its buffers checked."""
        raise NotImplementedError

    def _read(self, sd):
        """(settings, the state entry) of a state dict, its shape checked."""
        what = f"{type(self).__name__}.load_state_dict"
        if not isinstance(sd, Mapping):
            raise TypeError(f"{what} takes a state_dict() dict, not {type_name(sd)!r}")
        if set(sd) != {"state", "param_groups"}:
            raise ValueError(f"{what}: a state dict has the keys 'state' and 'param_groups', "
                             f"not {sorted(map(str, sd))}")
        groups, state = sd["param_groups"], sd["state"]
        if not isinstance(groups, (list, tuple)) or len(groups) != 1 or not isinstance(groups[0], Mapping):
            raise ValueError(f"{what}: 'param_groups' must be a list of one dict (pygrad's "
                             "optimizers have one parameter group)")
        group = groups[0]
        if not isinstance(group.get("params"), (list, tuple)) or list(group["params"]) != [0]:
            raise ValueError(f"{what}: the group's 'params' must be [0] (the parameters are one "
                             f"vector to torch), not {group.get('params')!r}")
        missing = [k for k in self._SETTINGS if k not in group]
        if missing:
            raise ValueError(f"{what}: the group lacks {missing} (is it another optimizer's state?)")
        for key in set(group) - set(self._SETTINGS) - {"params"}:
            if key not in TORCH_OPTIONS or not any(group[key] is x or group[key] == x
                                                   for x in TORCH_OPTIONS[key]):
                raise ValueError(f"{what}: {key}={group[key]!r} has no equal in pygrad's "
                                 f"{type(self).__name__}")
        if not isinstance(state, Mapping) or set(state) - {0}:
            raise ValueError(f"{what}: 'state' must be {{}} or {{0: {{...}}}}, not keyed "
                             f"{sorted(map(repr, state)) if isinstance(state, Mapping) else state!r}")
        entry = state.get(0, {})
        if not isinstance(entry, Mapping):
            raise ValueError(f"{what}: state[0] must be a dict, not {type_name(entry)!r}")
        return {k: group[k] for k in self._SETTINGS}, entry

    def _entry(self, entry, buffers):
        """(steps, {name: a float64 array of n or None}) of a state entry
        holding a step count and the named buffers."""
        what = f"{type(self).__name__}.load_state_dict"
        unknown = set(entry) - {"step", *buffers}
        if unknown:
            raise ValueError(f"{what}: state[0] has {sorted(map(str, unknown))}, which "
                             f"{type(self).__name__} does not keep (only 'step' and {list(buffers)})")
        step = np.asarray(entry.get("step", 0))  # torch keeps a float tensor
        if step.shape != () or step.dtype.kind not in "iuf" or not (0 <= step < 2**63) \
                or step != np.floor(step):
            raise ValueError(f"{what}: 'step' must be a whole number >= 0, not {entry.get('step')!r}")
        n, out = self._params.n, {}
        for name in buffers:
            value = entry.get(name)
            if value is not None:
                value = np.asarray(value)
                if value.dtype != np.float64 or value.shape != (n,):
                    raise ValueError(f"{what}: {name!r} must be a float64 array of {n} (one per "
                                     f"parameter), not {value.dtype} of shape {value.shape}")
                value = np.array(value, dtype=np.float64, order="C")  # a copy of our own
            out[name] = value
        return int(step), out

    # ---- settings as attributes, copies ------------------------------------

    def __getattr__(self, name: str) -> Any:  # the settings: opt.lr
        settings = self.__dict__.get("_settings", {})
        if name in settings:
            return settings[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._SETTINGS:  # a new learning rate, say: takes effect at the next step
            cfg, settings = self._config(dict(self._settings, **{name: value}))
            _c.check(_c.optim_configure(self._c, cfg), f"{type(self).__name__}.{name}")
            self._settings = settings
        else:
            object.__setattr__(self, name, value)

    def __reduce__(self):
        """copy, deepcopy and pickle: through the state (see the module's docstring)."""
        extras = {k: v for k, v in self.__dict__.items() if k not in ("_params", "_settings", "_c")}
        return _restore, (type(self), self.params, self.state_dict()), extras or None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._settings.items())
        return f"{type(self).__name__}({self._params.n} parameters, {args})"


def _restore(cls, params, state_dict):
    """An optimizer of class cls over params, from its state_dict() (copy and pickle)."""
    opt = cls.__new__(cls)
    settings = {k: v for k, v in state_dict["param_groups"][0].items() if k != "params"}
    Optimizer.__init__(opt, params, **settings)
    opt.load_state_dict(state_dict)
    return opt


class SGD(Optimizer):
    """torch.optim.SGD: p -= lr * g, with optional momentum, dampening,
    Nesterov momentum and weight decay (L2 added to the gradient)."""

    _KIND = _c.SGD
    _SETTINGS = ("lr", "momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, params: Values, lr: float = 0.01, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)

    def _buffers(self, has_momentum, m, v):
        return {"momentum_buffer": m if has_momentum else None}

    def _state_of(self, entry):
        steps, bufs = self._entry(entry, ("momentum_buffer",))
        m = bufs["momentum_buffer"]
        zeros = np.zeros(self._params.n)
        return steps, m is not None, zeros if m is None else m, zeros


class Adam(Optimizer):
    """torch.optim.Adam (amsgrad off): bias-corrected first and second
    moments, with optional weight decay (L2 added to the gradient)."""

    _KIND = _c.ADAM
    _SETTINGS = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, params: Values, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _buffers(self, has_momentum, m, v):
        return {"exp_avg": m, "exp_avg_sq": v}

    def _state_of(self, entry):
        steps, bufs = self._entry(entry, ("exp_avg", "exp_avg_sq"))
        m, v = bufs["exp_avg"], bufs["exp_avg_sq"]
        if (m is None) != (v is None) or (m is None and steps):
            raise ValueError(f"Adam.load_state_dict: state[0] needs both 'exp_avg' and 'exp_avg_sq' "
                             f"(or neither, at step 0), not {sorted(map(str, entry))}")
        zeros = np.zeros(self._params.n)
        return steps, False, zeros if m is None else m, zeros if v is None else v
