// Shared by the bindings that expose a GgufFile's metadata to Python.
#pragma once

#include <pybind11/pybind11.h>

#include "gguf/gguf.h"

namespace ternlab {

// The metadata as a dict: ints, floats, bools, str, and lists for arrays.
pybind11::dict metadata_dict(const GgufFile& f);

}  // namespace ternlab
