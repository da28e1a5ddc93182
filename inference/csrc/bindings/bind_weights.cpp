// Python view of the engine's weight matrices (for tests and tools):
// `_kernels.load_linear(file_or_path, name) -> Linear` with forward() and codes(),
// and `_kernels.dequantize_row(file_or_path, name, row)`. GgufError becomes
// `_kernels.GGUFError` (registered in bind_gguf.cpp); arguments are checked
// with errors that name them; the GIL is released while C++ works.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "gguf/weights.h"
#include "kernels/dispatch.h"
#include "kernels/float_matmul.h"
#include "kernels/ternary_pack.h"

namespace py = pybind11;

namespace ternlab {

namespace {

constexpr int kMaxThreads = 1024;
constexpr int kNpyAligned = 0x0100;  // NPY_ARRAY_ALIGNED

// A Linear together with the file whose mapping its float rows point into.
struct PyLinear {
    std::shared_ptr<GgufFile> file;
    Linear w;
};

std::shared_ptr<GgufFile> open_gguf(const py::object& file) {
    if (py::isinstance<GgufFile>(file)) return file.cast<std::shared_ptr<GgufFile>>();
    const std::string path = py::str(py::module_::import("os").attr("fspath")(file));
    py::gil_scoped_release nogil;
    return std::make_shared<GgufFile>(path);
}

std::unique_ptr<PyLinear> load(const py::object& file, const std::string& name,
                               const std::string& layout) {
    auto out = std::make_unique<PyLinear>();
    out->file = open_gguf(file);
    const Layout l = parse_layout(layout);
    py::gil_scoped_release nogil;
    out->w = load_linear(*out->file, out->file->tensor(name), l);
    return out;
}

// x: float32 [T, n_in], C-contiguous and aligned.
py::array checked_x(const PyLinear& l, const py::object& obj) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error("`x` must be a numpy.ndarray of float32, got " +
                             std::string(py::str(py::type::of(obj).attr("__name__"))));
    py::array x = py::reinterpret_borrow<py::array>(obj);
    if (!py::isinstance<py::array_t<float, 0>>(x))
        throw py::type_error("`x` must have dtype float32, got " + std::string(py::str(x.dtype())));
    if (x.ndim() != 2 || x.shape(1) != l.w.n_in)
        throw py::value_error("`x` must have shape [T, " + std::to_string(l.w.n_in) + "] for " +
                              l.w.name + ", got shape " + std::string(py::str(x.attr("shape"))));
    if (!(x.flags() & py::array::c_style))
        throw py::value_error("`x` must be C-contiguous (use numpy.ascontiguousarray)");
    if (!(x.flags() & kNpyAligned)) throw py::value_error("`x` must be aligned");
    return x;
}

py::array_t<float> forward(const PyLinear& l, const py::object& x_obj, int threads) {
    if (threads < 1 || threads > kMaxThreads)
        throw py::value_error("`threads` must be in [1, " + std::to_string(kMaxThreads) +
                              "], got " + std::to_string(threads));
    py::array x = checked_x(l, x_obj);
    const int64_t T = x.shape(0);
    py::array_t<float> y({T, l.w.n_out});
    int64_t bad;
    {
        py::gil_scoped_release nogil;
        bad = linear_forward(l.w, static_cast<const float*>(x.data()), T, y.mutable_data(),
                             threads);
    }
    if (bad >= 0)
        throw py::value_error("`x` holds a non-finite value in row " + std::to_string(bad) +
                              " (the ternary layer quantizes each row by its absmax)");
    return y;
}

py::array_t<int8_t> codes(const PyLinear& l) {
    if (!l.w.ternary)
        throw py::value_error("tensor " + l.w.name + " is " + type_name(l.w.type) +
                              ", not ternary: it has no codes");
    py::array_t<int8_t> out({l.w.n_out, l.w.n_in});
    int64_t bad;
    {
        py::gil_scoped_release nogil;
        bad = unpack_ternary(l.w.packed.data(), l.w.n_out, l.w.n_in, out.mutable_data(),
                             l.w.layout);
    }
    if (bad >= 0) throw std::logic_error("packed weights hold the invalid field 0b11");
    return out;
}

py::array_t<float> dequantize(const py::object& file, const std::string& name, int64_t row) {
    std::shared_ptr<GgufFile> f = open_gguf(file);
    const GgufTensor& t = f->tensor(name);
    py::array_t<float> out(t.ne[0]);
    py::gil_scoped_release nogil;
    dequantize_row(t, row, out.mutable_data());
    return out;
}

}  // namespace

void bind_weights(py::module_& m) {
    py::class_<PyLinear>(m, "Linear",
                         "A 2-D GGUF weight in the engine's form (ternary: repacked with one "
                         "scale; F32/F16/Q8_0/Q6_K/Q4_0: rows read from the file's mapping, or "
                         "copied into column panels when longer than panel_max_k).")
        .def_property_readonly("name", [](const PyLinear& l) { return l.w.name; })
        .def_property_readonly("n_out", [](const PyLinear& l) { return l.w.n_out; })
        .def_property_readonly("n_in", [](const PyLinear& l) { return l.w.n_in; })
        .def_property_readonly(
            "shape", [](const PyLinear& l) { return py::make_tuple(l.w.n_out, l.w.n_in); })
        .def_property_readonly("type", [](const PyLinear& l) { return l.w.type; })
        .def_property_readonly("type_name", [](const PyLinear& l) { return type_name(l.w.type); })
        .def_property_readonly("ternary", [](const PyLinear& l) { return l.w.ternary; })
        .def_property_readonly("scale",
                               [](const PyLinear& l) -> py::object {
                                   if (!l.w.ternary) return py::none();
                                   return py::float_(l.w.scale);
                               })
        .def_property_readonly(
            "panel_k", [](const PyLinear& l) { return l.w.panel_k; },
            "Float rows longer than panel_max_k: columns per panel (y is the sum of the "
            "panels' products in order); 0 otherwise.")
        .def("forward", &forward, py::arg("x"), py::arg("threads") = 1,
             "y [T, n_out] = x [T, n_in] @ W^T (float32). Ternary: the frozen BitLinear; "
             "Q6_K and Q4_0: int8 activations per 256- and 32-value block (q6k_int8.h, "
             "q4_0_int8.h).")
        .def("codes", &codes, "The int8 ternary codes [n_out, n_in] (ternary tensors only).")
        .def("__repr__", [](const PyLinear& l) {
            return "<Linear " + l.w.name + " " + type_name(l.w.type) + " [" +
                   std::to_string(l.w.n_out) + ", " + std::to_string(l.w.n_in) + "]>";
        });
    m.attr("panel_max_k") = kFloatPanelMaxK;
    m.def("load_linear", &load, py::arg("file"), py::arg("name"), py::arg("layout") = "bits2",
          "Load the 2-D tensor `name` of a GGUFFile (or a path) as a Linear; ternary "
          "weights are packed in `layout` ('bits2', 'base3' or 'auto').");
    m.def("dequantize_row", &dequantize, py::arg("file"), py::arg("name"), py::arg("row"),
          "Row `row` of an F32/F16/Q8_0/Q6_K/Q4_0 tensor as float32.");
    m.def("float_kernel_isa", [] { return std::string(backend().float_isa); },
          "The ISA of the F32/F16 kernels that set_isa's choice selects (the quantized "
          "formats' kernels give the same results on every ISA).");
}

}  // namespace ternlab
