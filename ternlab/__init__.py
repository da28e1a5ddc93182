"""ternlab: train, export, run and evaluate 1.58-bit (ternary) language models.

The subpackages live in the repository's top-level folders:
``ternlab.bitlinear`` (``bitlinear/``), ``ternlab.train`` (``train/``),
``ternlab.export`` (``export/``), ``ternlab.inference`` (``inference/``),
``ternlab.evals`` (``evals/``) and the Hydra configs ``ternlab.conf`` (``conf/``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ternlab")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
