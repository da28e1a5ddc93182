"""Declares the C++ extension only; all other metadata lives in pyproject.toml.

``ternlab.inference._kernels`` is built for baseline x86-64 / AArch64: no
``-march=native``. The SIMD kernels opt into AVX2 / AVX-512 per function and are
chosen at run time from the CPU's features (inference/csrc/kernels/dispatch.cpp).

The sources, by role: gguf/ (the GGUF file and its weight tensors), kernels/ (the
shared kernel code and one folder per ISA: scalar/, avx2/, avx512/, neon/), model/ (the
transformer runner), bindings/ (pybind11); tools/ holds standalone programs that are not
part of the extension. Every file name is unique across the folders.
"""

import os
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, naive_recompile
from setuptools import setup

CSRC = "inference/csrc"
PARTS = ("gguf", "kernels", "model", "bindings")


def _files(pattern: str) -> list[str]:
    return sorted(f for part in PARTS for f in glob(f"{CSRC}/{part}/**/{pattern}", recursive=True))


kernels = Pybind11Extension(
    "ternlab.inference._kernels",
    sources=_files("*.cpp"),
    depends=_files("*.h"),
    include_dirs=[CSRC],
    cxx_std=17,
    # -ffp-contract=off: the float steps must stay single IEEE operations, as the spec says.
    extra_compile_args=["-O3", "-ffp-contract=off"],
)

_NEWEST_HEADER = max((os.path.getmtime(h) for h in _files("*.h")), default=0.0)


def _needs_recompile(obj: str, src: str) -> bool:
    """pybind11's naive_recompile looks at the source file only; a header newer than the
    object rebuilds it too (an object compiled against an older struct layout crashed)."""
    return naive_recompile(obj, src) or os.path.getmtime(obj) < _NEWEST_HEADER


# Compile the sources in parallel and, in a development tree, only those that changed
# or whose headers did (`python setup.py build_ext --inplace`); NPY_NUM_BUILD_JOBS sets
# the job count.
ParallelCompile("NPY_NUM_BUILD_JOBS", needs_recompile=_needs_recompile).install()

setup(ext_modules=[kernels])
