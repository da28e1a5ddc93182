// pybind11 bindings: numpy arrays in and out, every argument checked (dtype,
// dimensions, contiguity, alignment, sizes) with an exception that names it,
// so a bad call raises instead of crashing. The GIL is released while the
// kernels run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <string>

#include "kernels/common.h"
#include "kernels/dispatch.h"
#include "kernels/ternary_pack.h"
#include "model/engine.h"

namespace py = pybind11;
using namespace ternlab;

namespace ternlab {
// Defined in bind_*.cpp, one file per part of the engine.
void bind_gguf(py::module_& m);
void bind_weights(py::module_& m);
void bind_model(py::module_& m);
void bind_bandwidth(py::module_& m);
}  // namespace ternlab

namespace {

constexpr int64_t kMaxK = (int64_t{1} << 24) - 1;  // |acc| <= 128 K stays inside int32
constexpr int kMaxThreads = 1024;
constexpr int kNpyAligned = 0x0100;  // NPY_ARRAY_ALIGNED

std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// Checks that `obj` is a C-contiguous, aligned ndarray of dtype T with `ndim`
// dimensions ([T, K]-like description in `what`) and returns it.
template <class T>
py::array checked(const py::object& obj, const char* name, const char* dtype, int ndim,
                  const char* what) {
    const std::string arg = std::string("`") + name + "`";
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(arg + " must be a numpy.ndarray of " + dtype + ", got " +
                             std::string(py::str(py::type::of(obj).attr("__name__"))));
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (!py::isinstance<py::array_t<T, 0>>(a))
        throw py::type_error(arg + " must have dtype " + dtype + ", got " +
                             std::string(py::str(a.dtype())));
    if (a.ndim() != ndim)
        throw py::value_error(arg + " must be " + std::to_string(ndim) + "-D " + what +
                              ", got shape " + shape_str(a));
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(arg + " must be C-contiguous (use numpy.ascontiguousarray)");
    if (!(a.flags() & kNpyAligned)) throw py::value_error(arg + " must be aligned");
    return a;
}

void check_k(int64_t k) {
    if (k <= 0) throw py::value_error("`k` (in_features) must be positive, got " + std::to_string(k));
    if (k > kMaxK)
        throw py::value_error("`k` (in_features) must be at most " + std::to_string(kMaxK) +
                              " for exact int32 accumulation, got " + std::to_string(k));
}

void check_threads(int threads) {
    if (threads < 1 || threads > kMaxThreads)
        throw py::value_error("`threads` must be in [1, " + std::to_string(kMaxThreads) +
                              "], got " + std::to_string(threads));
}

Layout checked_layout(const std::string& name) {
    if (name == "auto") throw py::value_error("`layout` must be 'bits2' or 'base3', got 'auto'");
    try {
        return parse_layout(name);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(std::string("`layout`: ") + e.what());
    }
}

// The packed weight matrix for in_features k: uint8 [N, packed_row_bytes(k, layout)].
py::array checked_packed(const py::object& packed, int64_t k, Layout layout) {
    check_k(k);
    py::array p = checked<uint8_t>(packed, "packed", "uint8", 2, "[N, packed_row_bytes(K)]");
    if (p.shape(0) == 0) throw py::value_error("`packed` has no rows (N = 0)");
    if (p.shape(1) != packed_row_bytes(k, layout))
        throw py::value_error("`packed` has " + std::to_string(p.shape(1)) +
                              " bytes per row; K = " + std::to_string(k) + " in layout " +
                              layout_name(layout) + " needs " +
                              std::to_string(packed_row_bytes(k, layout)) +
                              " (mismatched K or layout, or not packed by pack_ternary_weights)");
    return p;
}

void check_x_k(const py::array& x, const char* name, int64_t k) {
    if (x.shape(1) != k)
        throw py::value_error(std::string("`") + name + "` has K = " + std::to_string(x.shape(1)) +
                              " columns, but the packed weights have K = " + std::to_string(k));
}

py::tuple quantize_activations(const py::object& x_obj, int threads) {
    check_threads(threads);
    py::array x = checked<float>(x_obj, "x", "float32", 2, "[T, K]");
    const int64_t T = x.shape(0), K = x.shape(1);
    if (K == 0) throw py::value_error("`x` must have at least one column (K = 0)");
    check_k(K);
    py::array_t<int8_t> codes({T, K});
    py::array_t<float> s_x(T);
    std::vector<int32_t> sums(static_cast<size_t>(T));
    int64_t bad;
    {
        py::gil_scoped_release nogil;
        bad = quantize_rows(static_cast<const float*>(x.data()), T, K, codes.mutable_data(), K,
                            s_x.mutable_data(), sums.data(), threads);
    }
    if (bad >= 0)
        throw py::value_error("`x` holds a non-finite value in row " + std::to_string(bad));
    return py::make_tuple(codes, s_x);
}

py::array_t<uint8_t> pack_weights(const py::object& codes_obj, const std::string& layout_name) {
    const Layout layout = checked_layout(layout_name);
    py::array c = checked<int8_t>(codes_obj, "codes", "int8", 2, "[N, K]");
    const int64_t N = c.shape(0), K = c.shape(1);
    if (N == 0 || K == 0) throw py::value_error("`codes` must not be empty, got shape " + shape_str(c));
    check_k(K);
    py::array_t<uint8_t> packed({N, packed_row_bytes(K, layout)});
    int64_t bad;
    {
        py::gil_scoped_release nogil;
        bad = pack_ternary(static_cast<const int8_t*>(c.data()), N, K, packed.mutable_data(),
                           layout);
    }
    if (bad >= 0)
        throw py::value_error("`codes` must hold only -1, 0, +1; found " +
                              std::to_string(static_cast<const int8_t*>(c.data())[bad]) +
                              " at [" + std::to_string(bad / K) + ", " +
                              std::to_string(bad % K) + "]");
    return packed;
}

py::array_t<int8_t> unpack_weights(const py::object& packed_obj, int64_t k,
                                   const std::string& layout_name) {
    const Layout layout = checked_layout(layout_name);
    py::array p = checked_packed(packed_obj, k, layout);
    const int64_t N = p.shape(0);
    py::array_t<int8_t> codes({N, k});
    int64_t bad;
    {
        py::gil_scoped_release nogil;
        bad = unpack_ternary(static_cast<const uint8_t*>(p.data()), N, k, codes.mutable_data(),
                             layout);
    }
    if (bad >= 0)
        throw py::value_error(std::string("`packed` holds an invalid field (") +
                              (layout == kBase3 ? "a base-3 byte > 242" : "the 2-bit 0b11") +
                              ") at weight [" +
                              std::to_string(bad / k) + ", " + std::to_string(bad % k) + "]");
    return codes;
}

py::array_t<float> matmul(const py::object& packed_obj, int64_t k, double scale,
                          const py::object& x_obj, int threads, const std::string& layout_name) {
    check_threads(threads);
    const Layout layout = checked_layout(layout_name);
    py::array p = checked_packed(packed_obj, k, layout);
    py::array x = checked<float>(x_obj, "x", "float32", 2, "[T, K]");
    check_x_k(x, "x", k);
    const float s = static_cast<float>(scale);
    if (!std::isfinite(s) || !(s > 0.0f))
        throw py::value_error("`scale` must be a positive finite float32, got " +
                              std::to_string(scale));
    const int64_t N = p.shape(0), T = x.shape(0);
    py::array_t<float> y({T, N});
    int64_t bad;
    {
        py::gil_scoped_release nogil;
        bad = matmul_f32(static_cast<const uint8_t*>(p.data()), N, k, s,
                         static_cast<const float*>(x.data()), T, y.mutable_data(), threads,
                         layout);
    }
    if (bad >= 0)
        throw py::value_error("`x` holds a non-finite value in row " + std::to_string(bad));
    return y;
}

py::array_t<int32_t> matmul_int_py(const py::object& packed_obj, int64_t k,
                                   const py::object& x_obj, int threads,
                                   const std::string& layout_name) {
    check_threads(threads);
    const Layout layout = checked_layout(layout_name);
    py::array p = checked_packed(packed_obj, k, layout);
    py::array x = checked<int8_t>(x_obj, "xcodes", "int8", 2, "[T, K]");
    check_x_k(x, "xcodes", k);
    const int64_t N = p.shape(0), T = x.shape(0);
    py::array_t<int32_t> out({T, N});
    {
        py::gil_scoped_release nogil;
        matmul_int(static_cast<const uint8_t*>(p.data()), N, k,
                   static_cast<const int8_t*>(x.data()), T, out.mutable_data(), threads, layout);
    }
    return out;
}

}  // namespace

PYBIND11_MODULE(_kernels, m) {
    m.doc() = "ternlab's C++ ternary kernels (see ternlab.inference.kernels for the documented API)";
    m.attr("QK") = kQK;
    m.attr("QK3") = kQK3;
    m.def(
        "packed_row_bytes",
        [](int64_t k, const std::string& layout) {
            check_k(k);
            return packed_row_bytes(k, checked_layout(layout));
        },
        py::arg("k"), py::arg("layout") = "bits2");
    m.def("quantize_activations", &quantize_activations, py::arg("x"), py::arg("threads") = 1);
    m.def("pack_ternary_weights", &pack_weights, py::arg("codes"), py::arg("layout") = "bits2");
    m.def("unpack_ternary_weights", &unpack_weights, py::arg("packed"), py::arg("k"),
          py::arg("layout") = "bits2");
    m.def("ternary_matmul", &matmul, py::arg("packed"), py::arg("k"), py::arg("scale"),
          py::arg("x"), py::arg("threads") = 1, py::arg("layout") = "bits2");
    m.def("ternary_matmul_int", &matmul_int_py, py::arg("packed"), py::arg("k"),
          py::arg("xcodes"), py::arg("threads") = 1, py::arg("layout") = "bits2");
    m.def("preferred_layout", [] { return std::string(layout_name(backend().preferred_layout)); },
          "The packed layout the current ISA multiplies fastest ('bits2' or 'base3').");
    m.def("available_isas", &available_isas);
    m.def("known_isas", &known_isas);
    m.def("set_isa", &set_isa, py::arg("name"));
    m.def("current_isa", &current_isa);
    bind_gguf(m);
    bind_weights(m);
    bind_model(m);
    bind_bandwidth(m);
}
