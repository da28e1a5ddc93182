// Placeholder: replaced by the weights bindings.
#include <pybind11/pybind11.h>

namespace ternlab {
void bind_weights(pybind11::module_& m) { (void)m; }
}  // namespace ternlab
