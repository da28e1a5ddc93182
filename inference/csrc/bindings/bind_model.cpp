// Python view of the transformer runner: `_kernels.Model(path, threads=1, n_ctx=0,
// layout="auto", n_seq=1, kv_type="f32")`, and the attention kernels for tests.
// Loading and eval run with the GIL released; a mutex serialises calls on one
// model from several Python threads (the KV cache is shared state).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bindings/bind_gguf.h"
#include "kernels/attention_kernels.h"
#include "kernels/float_matmul.h"
#include "model/attention.h"
#include "model/model.h"

namespace py = pybind11;

namespace ternlab {

namespace {

struct PyModel {
    std::unique_ptr<Model> model;
    std::mutex mu;
};

std::unique_ptr<PyModel> open_model(const py::object& path, int threads, int64_t n_ctx,
                                    const std::string& layout, int64_t n_seq,
                                    const std::string& kv_type) {
    const std::string p = py::str(py::module_::import("os").attr("fspath")(path));
    auto out = std::make_unique<PyModel>();
    py::gil_scoped_release nogil;
    out->model = std::make_unique<Model>(p, threads, n_ctx, layout, n_seq, kv_type);
    return out;
}

py::dict config_dict(const ModelConfig& c) {
    py::dict d;
    d["arch"] = c.arch;
    d["n_vocab"] = c.n_vocab;
    d["n_embd"] = c.n_embd;
    d["n_layer"] = c.n_layer;
    d["n_head"] = c.n_head;
    d["n_head_kv"] = c.n_head_kv;
    d["head_dim"] = c.head_dim;
    d["n_ff"] = c.n_ff;
    d["n_ctx_train"] = c.n_ctx_train;
    d["rms_eps"] = c.rms_eps;
    d["rope_base"] = c.rope_base;
    d["relu2"] = c.relu2;
    d["sub_norm"] = c.sub_norm;
    d["neox_rope"] = c.neox_rope;
    d["bos"] = c.bos;
    d["eos"] = c.eos;
    return d;
}

std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// Any 1-D array-like of integers -> int32 token ids, each checked against the vocabulary.
std::vector<int32_t> token_ids(const py::object& tokens, int64_t n_vocab) {
    py::array a = py::module_::import("numpy").attr("asarray")(tokens);
    if (a.ndim() != 1)
        throw py::value_error("`tokens` must be a 1-D sequence of token ids, got shape " +
                              shape_str(a));
    if (a.size() == 0) throw py::value_error("`tokens` is empty; pass at least one token id");
    const char kind = a.dtype().kind();
    if (kind != 'i' && kind != 'u')
        throw py::type_error("`tokens` must hold integers, got dtype " +
                             std::string(py::str(a.dtype())));
    auto ids = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    if (!ids) throw py::type_error("`tokens` does not convert to int64 (uint64 above 2**63?)");
    std::vector<int32_t> out(static_cast<size_t>(ids.size()));
    const int64_t* p = ids.data();
    for (py::ssize_t i = 0; i < ids.size(); ++i) {
        if (p[i] < 0 || p[i] >= n_vocab)
            throw py::value_error("`tokens`[" + std::to_string(i) + "] = " +
                                  std::to_string(p[i]) + " is outside the vocabulary [0, " +
                                  std::to_string(n_vocab) + ")");
        out[static_cast<size_t>(i)] = static_cast<int32_t>(p[i]);
    }
    return out;
}

py::array_t<float> eval(PyModel& self, const py::object& tokens, bool all_logits, int64_t seq) {
    const int64_t n_vocab = self.model->config().n_vocab;
    const std::vector<int32_t> ids = token_ids(tokens, n_vocab);
    const auto T = static_cast<py::ssize_t>(ids.size());
    const auto V = static_cast<py::ssize_t>(n_vocab);
    py::array_t<float> logits = all_logits ? py::array_t<float>({T, V}) : py::array_t<float>(V);
    float* out = logits.mutable_data();
    {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(self.mu);
        self.model->eval(ids.data(), T, all_logits, out, seq);
    }
    return logits;
}

// eval_batch(seqs, tokens, all_logits): tokens[i] (1-D ints) for slot seqs[i].
py::array_t<float> eval_batch(PyModel& self, const std::vector<int64_t>& seqs,
                              const py::list& tokens, const py::object& all_logits) {
    const int64_t n_vocab = self.model->config().n_vocab;
    if (seqs.empty()) throw py::value_error("`seqs` is empty; pass at least one sequence slot");
    if (static_cast<size_t>(py::len(tokens)) != seqs.size())
        throw py::value_error("`tokens` must hold one token list per slot in `seqs` (" +
                              std::to_string(seqs.size()) + "), got " +
                              std::to_string(py::len(tokens)));
    std::vector<uint8_t> all(seqs.size(), 0);
    if (py::isinstance<py::bool_>(all_logits)) {
        std::fill(all.begin(), all.end(), all_logits.cast<bool>() ? 1 : 0);
    } else {
        const auto flags = all_logits.cast<std::vector<bool>>();
        if (flags.size() != seqs.size())
            throw py::value_error("`all_logits` must be a bool or one bool per slot");
        for (size_t i = 0; i < flags.size(); ++i) all[i] = flags[i] ? 1 : 0;
    }
    std::vector<int32_t> ids;
    std::vector<int64_t> lens;
    py::ssize_t rows = 0;
    for (size_t i = 0; i < seqs.size(); ++i) {
        const std::vector<int32_t> one = token_ids(tokens[i], n_vocab);
        ids.insert(ids.end(), one.begin(), one.end());
        lens.push_back(static_cast<int64_t>(one.size()));
        rows += all[i] ? static_cast<py::ssize_t>(one.size()) : 1;
    }
    py::array_t<float> logits({rows, static_cast<py::ssize_t>(n_vocab)});
    float* out = logits.mutable_data();
    {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(self.mu);
        self.model->eval_batch(ids.data(), seqs.data(), lens.data(), all.data(),
                               static_cast<int64_t>(seqs.size()), out);
    }
    return logits;
}

// ---- the attention kernels, for tests ------------------------------------------------
// A C-contiguous 2-D float32 or float16 array (a cache), checked by name.
py::array cache_array(const py::object& x, const char* name, bool* f16) {
    py::module_ np = py::module_::import("numpy");
    py::array a = np.attr("ascontiguousarray")(x);
    if (a.ndim() != 2)
        throw py::value_error(std::string("`") + name + "` must be 2-D, got shape " +
                              shape_str(a));
    if (a.dtype().is(py::dtype("float16")))
        *f16 = true;
    else if (a.dtype().is(py::dtype::of<float>()))
        *f16 = false;
    else
        throw py::type_error(std::string("`") + name + "` must be float32 or float16, got " +
                             std::string(py::str(a.dtype())));
    return a;
}

using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

const AttentionKernels& kernels_for(int64_t hd, bool reference) {
    return reference ? kAttentionScalar : attention_kernels(hd);
}

// scores(q [G, hd], k [n, hd]) -> (s [G, n], mx [G]).
py::tuple attention_scores(const F32Array& q, const py::object& k_in, float scale,
                           bool reference) {
    bool f16 = false;
    const py::array k = cache_array(k_in, "k", &f16);
    if (q.ndim() != 2 || q.shape(0) < 1 || q.shape(0) > kGroup || k.shape(1) != q.shape(1) ||
        k.shape(0) < 1)
        throw py::value_error("want q [G, hd] (1 <= G <= " + std::to_string(kGroup) +
                              ") and k [n >= 1, hd], got " + shape_str(q) + " and " +
                              shape_str(k));
    const int G = static_cast<int>(q.shape(0));
    const int64_t hd = q.shape(1), n = k.shape(0);
    py::array_t<float> s({static_cast<py::ssize_t>(G), static_cast<py::ssize_t>(n)});
    py::array_t<float> mx(G);
    float mxv[kGroup];
    const AttentionKernels& kern = kernels_for(hd, reference);
    if (f16)
        kern.scores_f16(q.data(), G, static_cast<const uint16_t*>(k.data()), n, hd, scale,
                        s.mutable_data(), n, mxv);
    else
        kern.scores(q.data(), G, static_cast<const float*>(k.data()), n, hd, scale,
                    s.mutable_data(), n, mxv);
    std::copy(mxv, mxv + G, mx.mutable_data());
    return py::make_tuple(s, mx);
}

// weighted_sum(p [G, n], vt [hd, n]) -> out [G, hd].
py::array_t<float> attention_weighted_sum(const F32Array& p, const py::object& vt_in,
                                          bool reference) {
    bool f16 = false;
    const py::array vt = cache_array(vt_in, "vt", &f16);
    if (p.ndim() != 2 || p.shape(0) < 1 || p.shape(0) > kGroup || p.shape(1) < 1 ||
        vt.shape(1) != p.shape(1) || vt.shape(0) < 1)
        throw py::value_error("want p [G, n] (1 <= G <= " + std::to_string(kGroup) +
                              ", n >= 1) and vt [hd, n], got " + shape_str(p) + " and " +
                              shape_str(vt));
    const int G = static_cast<int>(p.shape(0));
    const int64_t n = p.shape(1), hd = vt.shape(0);
    py::array_t<float> out({static_cast<py::ssize_t>(G), static_cast<py::ssize_t>(hd)});
    const AttentionKernels& kern = kernels_for(hd, reference);
    if (f16)
        kern.weighted_sum_f16(p.data(), G, n, static_cast<const uint16_t*>(vt.data()), n, n, hd,
                              out.mutable_data());
    else
        kern.weighted_sum(p.data(), G, n, static_cast<const float*>(vt.data()), n, n, hd,
                          out.mutable_data());
    return out;
}

// float32 -> float16 as the f16 KV cache rounds them (fp32_to_fp16).
py::array float_to_half(const F32Array& x) {
    py::array out(py::dtype("float16"), std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    auto* o = static_cast<uint16_t*>(out.mutable_data());
    const float* in = x.data();
    for (py::ssize_t i = 0; i < x.size(); ++i) o[i] = fp32_to_fp16(in[i]);
    return out;
}

template <class F>
void locked(PyModel& self, const F& fn) {
    py::gil_scoped_release nogil;
    std::lock_guard<std::mutex> lock(self.mu);
    fn(*self.model);
}

}  // namespace

void bind_model(py::module_& m) {
    m.def("attention_kernel_isa", &attention_kernel_isa, py::arg("head_dim"),
          "The attention kernels the current ISA uses for head_dim: 'avx2', 'neon' or "
          "'scalar'.");
    m.def("attention_scores", &attention_scores, py::arg("q"), py::arg("k"), py::arg("scale"),
          py::arg("reference") = false,
          "For tests: the attention scores kernel of the current ISA (the scalar reference "
          "if `reference`): q [G <= 4, hd] float32, k [n, hd] float32 or float16 (the f16 "
          "kernel); returns (s [G, n] = q k^T * scale, the max of each row).");
    m.def("attention_weighted_sum", &attention_weighted_sum, py::arg("p"), py::arg("vt"),
          py::arg("reference") = false,
          "For tests: the attention weighted-sum kernel of the current ISA (the scalar "
          "reference if `reference`): p [G <= 4, n] float32, vt [hd, n] float32 or float16; "
          "returns p vt^T [G, hd].");
    m.def("float_to_half", &float_to_half, py::arg("x"),
          "float32 values as the f16 KV cache stores them (IEEE half, ties to even).");
    py::class_<PyModel>(m, "Model",
                        "A decoder-only transformer (bitnet, bitnet-b1.58, llama) read from a "
                        "GGUF file, with a KV cache of n_ctx positions (0: the training "
                        "context, at most 4096). Bad files raise GGUFError.")
        .def(py::init(&open_model), py::arg("path"), py::arg("threads") = 1,
             py::arg("n_ctx") = 0, py::arg("layout") = "auto", py::arg("n_seq") = 1,
             py::arg("kv_type") = "f32")
        .def_property_readonly("n_seq", [](const PyModel& s) { return s.model->n_seq(); })
        .def_property_readonly("layout", [](const PyModel& s) { return s.model->layout(); })
        .def_property_readonly("kv_type", [](const PyModel& s) { return s.model->kv_type(); })
        .def_property_readonly(
            "kv_cache_bytes", [](const PyModel& s) { return s.model->kv_cache_bytes(); },
            "Bytes of the KV cache (K and V of every slot, allocated at load; pages are "
            "touched as positions fill).")
        .def_property_readonly("config",
                               [](const PyModel& s) { return config_dict(s.model->config()); })
        .def_property_readonly("metadata",
                               [](const PyModel& s) { return metadata_dict(s.model->file()); })
        .def_property_readonly("path", [](const PyModel& s) { return s.model->file().path(); })
        .def_property_readonly("n_ctx", [](const PyModel& s) { return s.model->n_ctx(); })
        .def_property_readonly("n_past", [](const PyModel& s) { return s.model->n_past(0); })
        .def(
            "seq_n_past", [](PyModel& s, int64_t seq) {
                int64_t n = 0;
                locked(s, [&](Model& m) { n = m.n_past(seq); });
                return n;
            },
            py::arg("seq"), "Positions cached in sequence slot `seq`.")
        .def_property(
            "threads", [](const PyModel& s) { return s.model->threads(); },
            [](PyModel& s, int threads) { locked(s, [&](Model& m) { m.set_threads(threads); }); })
        .def(
            "truncate",
            [](PyModel& s, int64_t n, int64_t seq) {
                locked(s, [&](Model& m) { m.truncate(n, seq); });
            },
            py::arg("n"), py::arg("seq") = 0,
            "Forget cached positions >= n of slot `seq` (0 clears it).")
        .def(
            "copy_seq",
            [](PyModel& s, int64_t src, int64_t dst, int64_t n) {
                locked(s, [&](Model& m) { m.copy_seq(src, dst, n); });
            },
            py::arg("src"), py::arg("dst"), py::arg("n") = -1,
            "Slot dst := the first n cached positions of slot src (n < 0: all).")
        .def("eval", &eval, py::arg("tokens"), py::arg("all_logits") = false, py::arg("seq") = 0,
             "Run `tokens` (1-D ints) at positions n_past(seq)..; returns float32 logits "
             "[T, n_vocab] if all_logits else [n_vocab] for the last token.")
        .def("eval_batch", &eval_batch, py::arg("seqs"), py::arg("tokens"),
             py::arg("all_logits") = false,
             "Run tokens[i] in slot seqs[i] (distinct slots) in one forward pass; returns "
             "float32 logits rows in order: all of tokens[i] where all_logits (a bool, or one "
             "per slot) says so, else the last row of each.")
        .def("__repr__", [](const PyModel& s) {
            const ModelConfig& c = s.model->config();
            return "<Model " + c.arch + " " + s.model->file().path() + ": " +
                   std::to_string(c.n_layer) + " layers, n_embd " + std::to_string(c.n_embd) +
                   ", n_ctx " + std::to_string(s.model->n_ctx()) + ", n_past " +
                   std::to_string(s.model->n_past()) + ">";
        });
}

}  // namespace ternlab
