// Placeholder: replaced by the model bindings.
#include <pybind11/pybind11.h>

namespace ternlab {
void bind_model(pybind11::module_& m) { (void)m; }
}  // namespace ternlab
