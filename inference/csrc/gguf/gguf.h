// A memory-mapped, fully validated GGUF file (format: ggml's docs/gguf.md,
// versions 2 and 3, little-endian). The constructor checks every header
// field, count, string length, array length, offset, size, alignment and
// tensor type against the file size *before* anything is used, so a
// truncated, corrupt or hostile file raises GgufError and is never read out
// of bounds. Nothing is copied: tensor data points into the mapping.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace ternlab {

// ggml tensor type ids the engine understands (ggml.h; I2_S is bitnet.cpp's).
enum GgmlType : uint32_t {
    kF32 = 0,
    kF16 = 1,
    kQ4_0 = 2,
    kQ8_0 = 8,
    kQ6_K = 14,
    kTQ1_0 = 34,
    kTQ2_0 = 35,
    kI2_S = 36,
};

// Any problem with a file: the message names the file, the field and, where
// there is one, the fix.
struct GgufError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// One metadata value. `type` is the GGUF value type (0 u8, 1 i8, 2 u16, 3 i16,
// 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array, 10 u64, 11 i64, 12 f64).
// Integers and bools are held in `i` (u64 values above INT64_MAX are refused),
// floats in `f`, strings in `s`; an array holds its element type in
// `array_type` and its elements in `array`.
struct GgufValue {
    uint32_t type = 0;
    int64_t i = 0;
    double f = 0.0;
    std::string s;
    uint32_t array_type = 0;
    std::vector<GgufValue> array;
};

struct GgufTensor {
    std::string name;
    uint32_t type = 0;
    std::vector<int64_t> ne;  // ggml order: ne[0] is the row length (innermost)
    uint64_t offset = 0;      // from the start of the data section
    uint64_t nbytes = 0;      // validated: the tensor lies inside the file
    const uint8_t* data = nullptr;
    int64_t rows() const;     // product of ne[1..]
};

// Name of a known type ("F16", "TQ2_0", ...) or "type <id>".
std::string type_name(uint32_t type);
// Values per block and bytes per block of a known type; false for an unknown one.
bool type_block(uint32_t type, int64_t* block_values, int64_t* block_bytes);
// Bytes of a tensor of `type` with dimensions `ne`; throws GgufError naming
// `what` for an unknown type, a row length not a multiple of the block, or
// an overflow. (I2_S: n / 4 + 32, the float32 scale and padding at the end.)
uint64_t tensor_nbytes(uint32_t type, const std::vector<int64_t>& ne, const std::string& what);

class GgufCursor;

class GgufFile {
   public:
    explicit GgufFile(const std::string& path);  // throws GgufError
    ~GgufFile();
    GgufFile(const GgufFile&) = delete;
    GgufFile& operator=(const GgufFile&) = delete;

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t file_size() const { return size_; }
    // Keys in file order.
    const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
    const std::vector<GgufTensor>& tensors() const { return tensors_; }

    const GgufValue* find_key(const std::string& key) const;  // nullptr if absent
    const GgufTensor* find_tensor(const std::string& name) const;
    // Throw GgufError naming the file and the key/tensor when absent or of the wrong kind.
    const GgufTensor& tensor(const std::string& name) const;
    int64_t get_int(const std::string& key) const;
    int64_t get_int(const std::string& key, int64_t fallback) const;
    double get_float(const std::string& key) const;  // accepts integer values too
    double get_float(const std::string& key, double fallback) const;
    std::string get_string(const std::string& key) const;
    std::string get_string(const std::string& key, const std::string& fallback) const;

    // Drop the pages of a tensor from this process's memory (after its data has
    // been copied into another layout), so they do not count twice in RSS.
    void release(const GgufTensor& t) const;

   private:
    void parse();
    void read_metadata(GgufCursor& c, uint64_t n_kv);
    void read_tensor_infos(GgufCursor& c, uint64_t n_tensors);
    void place_tensors(uint64_t header_end);

    std::string path_;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t size_ = 0;
    const uint8_t* map_ = nullptr;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::unordered_map<std::string, size_t> kv_index_;
    std::vector<GgufTensor> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace ternlab
