"""The installed distribution: its version, its compiled module and the
files a user's tools rely on."""
import importlib.metadata
import os
import sys

import _pygrad
import pygrad


def test_version_is_written_once():
    # pyproject.toml reads __version__ from pygrad/__init__.py; the installed
    # metadata must say the same.
    assert pygrad.__version__ == importlib.metadata.version("pygrad-engine")


def test_the_extension_is_built_for_the_stable_abi():
    # One wheel serves every CPython 3.9+ only if the module is abi3:
    # _pygrad.abi3.so on Linux and macOS; Windows has no ABI tag in the name.
    name = os.path.basename(_pygrad.__file__)
    if sys.platform == "win32":
        assert name == "_pygrad.pyd"
    else:
        assert name == "_pygrad.abi3.so"


def test_the_tests_import_the_installed_package():
    # conftest.py takes the source folder off sys.path: what runs here is the
    # installed wheel (the Python files and the module it was built with).
    dist = importlib.metadata.distribution("pygrad-engine")
    for module, path in ((pygrad, "pygrad/__init__.py"), (_pygrad, os.path.basename(_pygrad.__file__))):
        assert os.path.samefile(module.__file__, str(dist.locate_file(path)))
