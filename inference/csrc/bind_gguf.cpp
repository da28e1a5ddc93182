// Placeholder: replaced by the gguf bindings.
#include <pybind11/pybind11.h>

namespace ternlab {
void bind_gguf(pybind11::module_& m) { (void)m; }
}  // namespace ternlab
