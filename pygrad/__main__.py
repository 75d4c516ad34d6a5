"""python -m pygrad: the command line of pygrad.cli (train, bench); --help for more."""
import sys

from .cli import main

sys.exit(main(prog="python -m pygrad"))
