// Placeholder: replaced by the bandwidth bindings.
#include <pybind11/pybind11.h>

namespace ternlab {
void bind_bandwidth(pybind11::module_& m) { (void)m; }
}  // namespace ternlab
