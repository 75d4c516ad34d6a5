"""The installed distribution: its version, its compiled module and the
files a user's tools rely on."""
import ast
import importlib.metadata
import importlib.resources
import inspect
import os
import subprocess
import sys
import sysconfig

import pytest

import _pygrad
import pygrad
from pygrad.engine import UNARY_OPS


def test_version_is_written_once():
    # pyproject.toml reads __version__ from pygrad/__init__.py; the installed
    # metadata must say the same.
    assert pygrad.__version__ == importlib.metadata.version("pygrad-engine")


FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def test_the_extension_is_built_for_the_stable_abi():
    # One wheel serves every CPython 3.9+ only if the module is abi3, and
    # named so that each of them looks for it: _pygrad.abi3.so on Linux and
    # macOS, whichever CPython built it (3.15 lists a platform-tagged abi3
    # suffix first, which 3.9-3.14 do not know); Windows has no ABI tag in the
    # name. A free-threaded CPython has no abi3: 3.15t and later take abi3t,
    # 3.14t a module of its own (docs/pages/free-threading.md).
    name = os.path.basename(_pygrad.__file__)
    if sys.platform == "win32":
        assert name == "_pygrad.pyd"
    elif not FREE_THREADED:
        assert name == "_pygrad.abi3.so"
    elif sys.version_info >= (3, 15):
        assert name == "_pygrad.abi3t.so"
    else:
        assert name == f"_pygrad{sysconfig.get_config_var('EXT_SUFFIX')}"


@pytest.mark.skipif(not FREE_THREADED, reason="a free-threaded CPython only (3.14t, 3.15t)")
def test_importing_keeps_the_gil_off(tmp_path):
    """The module declares it runs without the GIL (cffi marks it so), so
    importing pygrad does not switch the GIL back on (CPython would, with a
    RuntimeWarning)."""
    program = "import sys, warnings; warnings.simplefilter('error'); import pygrad; " \
              "print(sys._is_gil_enabled())"
    ran = subprocess.run([sys.executable, "-X", "gil=0", "-c", program], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "False\n", "")


def test_the_tests_import_the_installed_package():
    # conftest.py takes the source folder off sys.path: what runs here is the
    # installed wheel (the Python files and the module it was built with).
    dist = importlib.metadata.distribution("pygrad-engine")
    for module, path in ((pygrad, "pygrad/__init__.py"), (_pygrad, os.path.basename(_pygrad.__file__))):
        assert os.path.samefile(module.__file__, str(dist.locate_file(path)))


def test_the_package_is_marked_typed():
    # py.typed tells type checkers to use pygrad's own annotations (PEP 561).
    assert importlib.resources.files("pygrad").joinpath("py.typed").is_file()


def test_the_typed_declarations_list_every_unary_op():
    # Value's unary methods are attached from the C op table at import, so
    # engine.py declares them for type checkers; the two lists must agree.
    tree = ast.parse(inspect.getsource(pygrad.engine))
    (value,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Value"]
    (block,) = [n for n in value.body if isinstance(n, ast.If)
                and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"]
    declared = {f.name for f in block.body if isinstance(f, ast.FunctionDef)
                and not f.name.startswith("_") and f.name not in ("data", "grad")}
    assert declared == set(UNARY_OPS)


def test_the_typed_usage_example_runs():
    # tests/typing_usage.py is what mypy checks in CI; here it runs.
    import typing_usage

    # micrograd's README gives these for its example: 24.7041, 138.8338, 645.5773.
    assert [round(x, 4) for x in typing_usage.quickstart()] == [24.7041, 138.8338, 645.5773]
    first, last = typing_usage.train()
    assert last < first
    history = typing_usage.replay()
    assert history[-1] < history[0]


def test_submodules_load_on_first_use(tmp_path):
    """`import pygrad` leaves datasets, reference, ... unimported (they cost
    import time), and the first `pygrad.<name>` imports them; a name that is
    not a submodule stays an AttributeError. In a fresh interpreter, as a
    user's script sees it."""
    program = r'''
import sys
import pygrad
lazy = pygrad._SUBMODULES
assert not [m for m in sys.modules if m.startswith("pygrad.") and m[7:] in lazy], sorted(sys.modules)
x, y = pygrad.datasets.load_digits()
assert len(x) == len(y) == 1797
assert pygrad.reference.Value(2.0).data == 2.0 and "pygrad.reference" in sys.modules
assert all(name in dir(pygrad) for name in lazy)
try:
    pygrad.no_such_thing
except AttributeError as e:
    assert "no_such_thing" in str(e)
else:
    raise AssertionError("pygrad.no_such_thing did not raise")
print("ok")
'''
    ran = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0 and ran.stdout == "ok\n", ran.stderr


def test_import_pygrad_loads_no_numpy_and_training_needs_none():
    """`import pygrad` is quick (numpy, tqdm and the file formats are loaded at
    their first use): a model trains, backward included, with numpy never
    imported; the first call that needs numpy imports it."""
    import subprocess
    import sys
    program = (
        "import sys, pygrad\n"
        "assert not {'numpy', 'tqdm', 'zipfile'} & set(sys.modules), sorted(sys.modules)\n"
        "m = pygrad.MLP(2, [3, 1])\n"
        "loss = (m([1.0, -2.0]) - 1) ** 2\n"
        "m.zero_grad(); loss.backward()\n"
        "opt = pygrad.optim.SGD(m.parameters(), lr=0.1); opt.step()\n"
        "assert 'numpy' not in sys.modules\n"
        "print(type(pygrad.get_data(m)).__module__)\n")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"
