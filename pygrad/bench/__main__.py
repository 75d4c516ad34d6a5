"""python -m pygrad.bench: the benchmark suite (pygrad bench)."""
import sys

from .run import main

sys.exit(main())
