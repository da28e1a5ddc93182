// `_kernels.read_bandwidth(nbytes, threads=1, repetitions=3, simd=True) -> GB/s`:
// the memory read bandwidth that bounds decode speed (benchmarks/engine_vs_llamacpp.py);
// `_kernels.int8_mac_peak(threads=1, seconds=0.2) -> G MAC/s`: the instruction peak that
// bounds the AVX2 ternary GEMM.
#include <pybind11/pybind11.h>

#include <cstdint>

namespace py = pybind11;

namespace ternlab {

double read_bandwidth_gbs(int64_t nbytes, int threads, int repetitions, bool simd);  // bandwidth.cpp
double int8_mac_peak_gmacs(int threads, double seconds);  // int8_peak.cpp

void bind_bandwidth(py::module_& m) {
    m.def(
        "read_bandwidth",
        [](int64_t nbytes, int threads, int repetitions, bool simd) {
            py::gil_scoped_release nogil;
            return read_bandwidth_gbs(nbytes, threads, repetitions, simd);
        },
        py::arg("nbytes"), py::arg("threads") = 1, py::arg("repetitions") = 3,
        py::arg("simd") = true,
        "Best read bandwidth in GB/s (1e9 bytes/s) of `threads` threads each summing its slice "
        "of an `nbytes` buffer, over `repetitions` timed passes after one warm-up pass. "
        "`simd=False` uses the scalar loop instead of AVX2. Use a buffer far larger than the "
        "last-level cache (e.g. 1 GiB) to measure DRAM.");
    m.def(
        "int8_mac_peak",
        [](int threads, double seconds) {
            py::gil_scoped_release nogil;
            return int8_mac_peak_gmacs(threads, seconds);
        },
        py::arg("threads") = 1, py::arg("seconds") = 0.2,
        "G int8 multiply-adds a second of `threads` threads together, each running AVX2 "
        "vpmaddubsw + vpaddw pairs on registers only for about `seconds`: the ceiling of "
        "the AVX2 ternary GEMM (prefill, batched decode). RuntimeError without AVX2.");
}

}  // namespace ternlab
