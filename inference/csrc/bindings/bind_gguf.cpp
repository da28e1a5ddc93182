// Python view of the GGUF loader: `_kernels.GGUFFile(path)` and the
// `_kernels.GGUFError` exception (a ValueError) that every GgufError becomes.
#include "bindings/bind_gguf.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <memory>

namespace py = pybind11;

namespace ternlab {

namespace {

py::object to_python(const GgufValue& v) {
    switch (v.type) {
        case 6: case 12: return py::float_(v.f);
        case 7: return py::bool_(v.i != 0);
        case 8: return py::str(v.s);  // invalid UTF-8 raises UnicodeDecodeError: caught below
        case 9: {
            py::list out(v.array.size());
            for (size_t i = 0; i < v.array.size(); ++i) out[i] = to_python(v.array[i]);
            return std::move(out);
        }
        default: return py::int_(v.i);
    }
}

// A key in a message: a NUL byte would cut Python's copy of the message short.
std::string shown(std::string key) {
    std::replace(key.begin(), key.end(), '\0', '?');
    return key;
}

py::list tensor_list(const GgufFile& f) {
    py::list out;
    for (const GgufTensor& t : f.tensors()) {
        py::dict d;
        d["name"] = t.name;
        d["type"] = t.type;
        d["type_name"] = type_name(t.type);
        // numpy order (outermost first), as gguf-py reports shapes reversed from ggml's ne.
        d["shape"] = py::tuple(py::cast(std::vector<int64_t>(t.ne.rbegin(), t.ne.rend())));
        d["offset"] = t.offset;
        d["nbytes"] = t.nbytes;
        out.append(d);
    }
    return out;
}

// `path`: str, bytes or os.PathLike (os.fsencode gives the exact bytes of the name).
std::shared_ptr<GgufFile> open_file(const py::object& path) {
    const std::string p = py::bytes(py::module_::import("os").attr("fsencode")(path));
    py::gil_scoped_release nogil;
    return std::make_shared<GgufFile>(p);
}

}  // namespace

py::dict metadata_dict(const GgufFile& f) {
    py::dict out;
    for (const auto& [key, value] : f.metadata()) {
        try {
            out[py::str(key)] = to_python(value);
        } catch (py::error_already_set& e) {
            if (!e.matches(PyExc_UnicodeDecodeError)) throw;
            throw GgufError(f.path() + ": metadata '" + shown(key) +
                            "' is a string that is not valid UTF-8: corrupt file");
        }
    }
    return out;
}

void bind_gguf(py::module_& m) {
    py::register_exception<GgufError>(m, "GGUFError", PyExc_ValueError);
    py::class_<GgufFile, std::shared_ptr<GgufFile>>(m, "GGUFFile",
        "A memory-mapped GGUF file, validated on open (raises GGUFError).")
        .def(py::init(&open_file), py::arg("path"))
        .def_property_readonly("path", &GgufFile::path)
        .def_property_readonly("version", &GgufFile::version)
        .def_property_readonly("alignment", &GgufFile::alignment)
        .def_property_readonly("file_size", &GgufFile::file_size)
        .def_property_readonly("metadata", &metadata_dict)
        .def_property_readonly("tensors", &tensor_list);
    m.def("type_name", &type_name, py::arg("type"));
}

}  // namespace ternlab
