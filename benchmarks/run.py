"""The benchmark suite, now installed with pygrad as pygrad.bench: this
script runs it, like `pygrad bench` does. Options: --help."""
import sys

from pygrad.bench import main

sys.exit(main())
