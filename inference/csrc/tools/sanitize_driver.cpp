// Standalone driver for the sanitizer job (tests/test_engine_sanitizers.py): the
// engine's loaders without Python, so AddressSanitizer and UBSan see every access.
//
//   sanitize_driver [--model] [--threads N] [--kv-type f32|f16] FILE...
//
// Each FILE is opened with GgufFile; every metadata value is walked and the first
// and last byte of every tensor read (a tensor reaching past the mapping faults).
// With --model each FILE is also loaded as a Model (two KV-cache slots of the
// given type) and a few tokens evaluated, slot 0 then copied to slot 1.
// One line per file on stdout: "OK <file> ..." or "ERR <kind> <file>: <message>" for
// the errors a bad file may raise (GgufError; from Model also invalid_argument
// and runtime_error). Exit status: 0, or 2 if any other exception escaped.
//
// Build by hand (every engine source except the Python bindings):
//   g++ -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all
//       -fno-omit-frame-pointer -pthread -I inference/csrc
//       inference/csrc/tools/sanitize_driver.cpp
//       $(find inference/csrc/{gguf,model,kernels} -name '*.cpp') -o /tmp/sanitize_driver
// (one command line)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/model.h"

using namespace ternlab;

namespace {

// Folds every byte a value holds into `acc`, so nothing is optimised away.
uint64_t walk(const GgufValue& v, int depth = 0) {
    uint64_t acc = v.type + static_cast<uint64_t>(v.i) + static_cast<uint64_t>(v.f != 0.0);
    for (const char c : v.s) acc = acc * 31 + static_cast<unsigned char>(c);
    for (const GgufValue& e : v.array) acc += walk(e, depth + 1);
    return acc;
}

std::string open_gguf(const std::string& path) {
    const GgufFile f(path);
    uint64_t acc = 0;
    for (const auto& [key, value] : f.metadata()) acc += key.size() + walk(value);
    for (const GgufTensor& t : f.tensors()) {
        if (t.nbytes == 0 || t.data == nullptr) throw std::logic_error("tensor without data");
        const volatile uint8_t* p = t.data;
        acc += p[0] + p[t.nbytes - 1] + static_cast<uint64_t>(t.rows());
        int64_t values = 0, bytes = 0;
        if (!type_block(t.type, &values, &bytes)) throw std::logic_error("unknown type loaded");
        if (tensor_nbytes(t.type, t.ne, t.name) != t.nbytes)
            throw std::logic_error("tensor_nbytes disagrees with the loaded size");
        if (f.find_tensor(t.name) != &t) throw std::logic_error("tensor index broken");
    }
    for (const auto& kv : f.metadata())
        if (f.find_key(kv.first) != &kv.second) throw std::logic_error("metadata index broken");
    (void)f.get_int("general.alignment", 32);
    (void)f.get_string("general.architecture", "");
    return std::to_string(f.metadata().size()) + " keys, " + std::to_string(f.tensors().size()) +
           " tensors, checksum " + std::to_string(acc % 1000003);
}

std::string run_model(const std::string& path, int threads, const std::string& kv_type) {
    Model m(path, threads, 16, "auto", 2, kv_type);
    const int64_t n_vocab = m.config().n_vocab;
    const auto last = static_cast<int32_t>(n_vocab - 1);
    const std::vector<int32_t> prompt = {0, last, last > 0 ? 1 : 0};
    std::vector<float> logits(prompt.size() * static_cast<size_t>(n_vocab));
    m.eval(prompt.data(), static_cast<int64_t>(prompt.size()), true, logits.data());
    const int32_t next = 0;
    m.eval(&next, 1, false, logits.data());  // one decode step on the cache
    m.truncate(1);
    m.eval(&next, 1, false, logits.data());
    m.copy_seq(0, 1);
    m.eval(&next, 1, false, logits.data(), 1);
    double sum = 0;
    for (int64_t i = 0; i < n_vocab; ++i) sum += logits[static_cast<size_t>(i)];
    return "model " + m.config().arch + " kv " + m.kv_type() + " n_past " +
           std::to_string(m.n_past()) +
           ", logit sum " + std::to_string(sum);
}

}  // namespace

int main(int argc, char** argv) {
    bool model = false;
    int threads = 1;
    std::string kv_type = "f32";
    std::vector<std::string> files;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--model") == 0) {
            model = true;
        } else if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = std::atoi(argv[++i]);
        } else if (std::strcmp(argv[i], "--kv-type") == 0 && i + 1 < argc) {
            kv_type = argv[++i];
        } else {
            files.emplace_back(argv[i]);
        }
    }
    if (files.empty()) {
        std::fprintf(stderr,
                     "usage: sanitize_driver [--model] [--threads N] [--kv-type T] FILE...\n");
        return 64;
    }
    int unexpected = 0;
    for (const std::string& path : files) {
        std::string what;
        try {
            what = open_gguf(path);
            if (model) what += "; " + run_model(path, threads, kv_type);
            std::printf("OK %s %s\n", path.c_str(), what.c_str());
        } catch (const GgufError& e) {
            std::printf("ERR GgufError %s: %s\n", path.c_str(), e.what());
        } catch (const std::invalid_argument& e) {  // only Model may throw these two
            unexpected += what.empty();
            std::printf("ERR invalid_argument %s: %s\n", path.c_str(), e.what());
        } catch (const std::runtime_error& e) {
            unexpected += what.empty();
            std::printf("ERR runtime_error %s: %s\n", path.c_str(), e.what());
        } catch (const std::exception& e) {  // a broken invariant, bad_alloc, ...
            ++unexpected;
            std::printf("UNEXPECTED %s: %s\n", path.c_str(), e.what());
        }
        std::fflush(stdout);
    }
    return unexpected ? 2 : 0;
}
