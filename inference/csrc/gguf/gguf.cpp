#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <system_error>

namespace ternlab {

// A bounds-checked cursor over the mapped bytes: every read checks that it
// fits before touching memory and throws GgufError naming the field otherwise.
class GgufCursor {
   public:
    GgufCursor(const uint8_t* p, uint64_t size, const std::string& path)
        : p_(p), size_(size), path_(path) {}

    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }

    [[noreturn]] void fail(const std::string& what) const {
        throw GgufError(path_ + ": " + what + " (at byte " + std::to_string(pos_) + ")");
    }
    void need(uint64_t n, const std::string& field) const {
        if (n > remaining())
            fail("truncated file: " + field + " needs " + std::to_string(n) + " bytes, " +
                 std::to_string(remaining()) + " left");
    }
    template <class T>
    T read(const std::string& field) {
        need(sizeof(T), field);
        T v;
        std::memcpy(&v, p_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    // A length-prefixed string. `max_len` is a limit of the format (key and
    // tensor names), checked before the bytes left in the file.
    std::string string(const std::string& field, uint64_t max_len) {
        const uint64_t n = read<uint64_t>(field + " length");
        if (n > max_len)
            fail(field + " length " + std::to_string(n) + " exceeds the limit of " +
                 std::to_string(max_len) + " bytes: corrupt file");
        if (n > remaining())
            fail(field + " length " + std::to_string(n) + " exceeds the " +
                 std::to_string(remaining()) + " bytes left in the file: truncated or corrupt");
        std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(n));
        pos_ += n;
        return s;
    }

   private:
    const uint8_t* p_;
    uint64_t size_;
    uint64_t pos_ = 0;
    const std::string& path_;
};

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;              // GGML_MAX_DIMS
constexpr uint64_t kMaxKeyBytes = 65535;  // the spec's limit on key length
constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMinAlignment = 8;  // the spec: "it must be a multiple of 8"
constexpr uint64_t kMaxAlignment = uint64_t{1} << 20;
// Elements of one metadata array. Far above any tokenizer (~10^6 entries), it
// bounds the memory a small hostile file can claim (a GgufValue is ~90 bytes).
constexpr uint64_t kMaxArrayLength = uint64_t{1} << 24;
// Vectors sized from a count in the file reserve at most this much up front
// (the rest grows as entries actually parse), so a lying count costs nothing.
constexpr uint64_t kMaxReserve = 4096;

struct TypeInfo {
    uint32_t id;
    const char* name;
    int64_t block_values;
    int64_t block_bytes;
};

// ggml's types (ggml.h, GGML_QUANT_SIZES) plus bitnet.cpp's I2_S, whose size is
// not per block (see tensor_nbytes).
constexpr TypeInfo kTypes[] = {
    {0, "F32", 1, 4},          {1, "F16", 1, 2},          {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},       {6, "Q5_0", 32, 22},       {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},       {9, "Q8_1", 32, 40},       {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},    {12, "Q4_K", 256, 144},    {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},    {15, "Q8_K", 256, 292},    {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74},   {18, "IQ3_XXS", 256, 98},  {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},    {21, "IQ3_S", 256, 110},   {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136},  {24, "I8", 1, 1},          {25, "I16", 1, 2},
    {26, "I32", 1, 4},         {27, "I64", 1, 8},         {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},    {30, "BF16", 1, 2},        {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},    {36, "I2_S", 128, 32},
};

const TypeInfo* find_type(uint32_t id) {
    for (const TypeInfo& t : kTypes)
        if (t.id == id) return &t;
    return nullptr;
}

const char* value_type_name(uint32_t type) {
    static const char* const names[] = {"uint8", "int8",   "uint16", "int16", "uint32",
                                        "int32", "float32", "bool",  "string", "array",
                                        "uint64", "int64", "float64"};
    return type < 13 ? names[type] : "unknown";
}

// Length of the strict UTF-8 sequence at p (no overlong forms, surrogates or
// code points above U+10FFFF), or 0 if the bytes there are not one.
int utf8_length(const unsigned char* p, const unsigned char* end) {
    const unsigned c = *p;
    if (c < 0x80) return 1;
    int more;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) { more = 1; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { more = 2; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { more = 3; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (end - p <= more) return 0;
    for (int i = 1; i <= more; ++i) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return more + 1;
}

bool valid_utf8(const std::string& s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    for (int n; p < end; p += n)
        if ((n = utf8_length(p, end)) == 0) return false;
    return true;
}

// A name as shown in a message: control bytes (NUL above all, which would cut
// the message short in Python) and bytes that are not UTF-8 (Python could not
// decode the message and would lose it) are escaped as \xNN.
std::string printable(const std::string& s) {
    static const char hex[] = "0123456789abcdef";
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    std::string out;
    for (int n; p < end; p += n) {
        n = utf8_length(p, end);
        if (n > 1 || (n == 1 && *p >= 0x20 && *p != 0x7F)) {
            out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
        } else {
            n = 1;
            out += "\\x";
            out += hex[*p >> 4];
            out += hex[*p & 15];
        }
    }
    return out;
}

// std::strerror is not thread-safe; the loader runs without the GIL.
std::string errno_message(int err) { return std::generic_category().message(err); }

#ifndef TERNLAB_GGUF_HEAP_COPY
// Maps the whole file read-only and closes `fd`.
const uint8_t* map_file(int fd, uint64_t size, const std::string& path) {
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (m == MAP_FAILED) throw GgufError(path + ": mmap failed: " + errno_message(err));
    return static_cast<const uint8_t*>(m);
}

void unmap_file(const uint8_t* p, uint64_t size) { ::munmap(const_cast<uint8_t*>(p), size); }
#else
// Sanitizer builds (tools/sanitize_driver.cpp): an exact-size heap copy instead
// of a mapping, which AddressSanitizer does not watch, so that a read even one
// byte past the end of the file is reported.
const uint8_t* map_file(int fd, uint64_t size, const std::string& path) {
    void* p = nullptr;
    if (::posix_memalign(&p, 4096, size) != 0) {
        ::close(fd);
        throw GgufError(path + ": out of memory for a copy of the file");
    }
    for (uint64_t done = 0; done < size;) {
        const ssize_t n = ::pread(fd, static_cast<uint8_t*>(p) + done, size - done,
                                  static_cast<off_t>(done));
        if (n <= 0) {
            const int err = errno;
            ::close(fd);
            std::free(p);
            throw GgufError(path + ": read failed: " + errno_message(n == 0 ? EIO : err));
        }
        done += static_cast<uint64_t>(n);
    }
    ::close(fd);
    return static_cast<const uint8_t*>(p);
}

void unmap_file(const uint8_t* p, uint64_t) { std::free(const_cast<uint8_t*>(p)); }
#endif

size_t capped_reserve(uint64_t n) { return static_cast<size_t>(std::min(n, kMaxReserve)); }

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
    return __builtin_mul_overflow(a, b, out);
}

// Smallest encoded size of one value of a GGUF value type (bounds array counts).
uint64_t min_value_bytes(uint32_t type) {
    switch (type) {
        case 0: case 1: case 7: return 1;
        case 2: case 3: return 2;
        case 4: case 5: case 6: return 4;
        case 8: return 8;   // a string: its length field
        case 9: return 12;  // an array: type + count
        default: return 8;  // 10 u64, 11 i64, 12 f64
    }
}

GgufValue read_value(GgufCursor& c, uint32_t type, const std::string& key, int depth);

GgufValue read_array(GgufCursor& c, const std::string& key, int depth) {
    if (depth >= kMaxArrayDepth)
        c.fail("metadata '" + key + "': arrays nested more than " +
               std::to_string(kMaxArrayDepth) + " deep: corrupt file");
    GgufValue v;
    v.type = 9;
    v.array_type = c.read<uint32_t>("metadata '" + key + "' array type");
    if (v.array_type > 12)
        c.fail("metadata '" + key + "': unknown array element type " +
               std::to_string(v.array_type));
    const uint64_t n = c.read<uint64_t>("metadata '" + key + "' array length");
    if (n > c.remaining() / min_value_bytes(v.array_type))
        c.fail("metadata '" + key + "': array length " + std::to_string(n) +
               " cannot fit in the rest of the file: truncated or corrupt");
    if (n > kMaxArrayLength)
        c.fail("metadata '" + key + "': array length " + std::to_string(n) +
               " exceeds the limit of " + std::to_string(kMaxArrayLength) + " elements");
    v.array.reserve(capped_reserve(n));
    for (uint64_t i = 0; i < n; ++i) v.array.push_back(read_value(c, v.array_type, key, depth + 1));
    return v;
}

GgufValue read_value(GgufCursor& c, uint32_t type, const std::string& key, int depth) {
    const std::string field = "metadata '" + key + "'";
    GgufValue v;
    v.type = type;
    switch (type) {
        case 0: v.i = c.read<uint8_t>(field); break;
        case 1: v.i = c.read<int8_t>(field); break;
        case 2: v.i = c.read<uint16_t>(field); break;
        case 3: v.i = c.read<int16_t>(field); break;
        case 4: v.i = c.read<uint32_t>(field); break;
        case 5: v.i = c.read<int32_t>(field); break;
        case 6: v.f = c.read<float>(field); break;
        case 7: {
            const uint8_t b = c.read<uint8_t>(field);
            if (b > 1) c.fail(field + ": bool value " + std::to_string(b) + " is not 0 or 1");
            v.i = b;
            break;
        }
        case 8: v.s = c.string(field, std::numeric_limits<uint64_t>::max()); break;
        case 9: return read_array(c, key, depth);
        case 10: {
            const uint64_t u = c.read<uint64_t>(field);
            if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                c.fail(field + ": uint64 value " + std::to_string(u) + " is out of range");
            v.i = static_cast<int64_t>(u);
            break;
        }
        case 11: v.i = c.read<int64_t>(field); break;
        case 12: v.f = c.read<double>(field); break;
        default:
            c.fail(field + ": unknown value type " + std::to_string(type) +
                   " (GGUF has 0 to 12): corrupt file or a newer GGUF");
    }
    return v;
}

bool is_int(const GgufValue& v) {
    return v.type <= 5 || v.type == 7 || v.type == 10 || v.type == 11;
}

}  // namespace

int64_t GgufTensor::rows() const {
    int64_t r = 1;
    for (size_t i = 1; i < ne.size(); ++i) r *= ne[i];
    return r;
}

std::string type_name(uint32_t type) {
    const TypeInfo* t = find_type(type);
    return t ? t->name : "type " + std::to_string(type);
}

bool type_block(uint32_t type, int64_t* block_values, int64_t* block_bytes) {
    const TypeInfo* t = find_type(type);
    if (!t) return false;
    *block_values = t->block_values;
    *block_bytes = t->block_bytes;
    return true;
}

uint64_t tensor_nbytes(uint32_t type, const std::vector<int64_t>& ne, const std::string& what) {
    const TypeInfo* t = find_type(type);
    if (!t)
        throw GgufError(what + ": unknown tensor type id " + std::to_string(type) +
                        " (not a ggml type this build knows)");
    if (ne.empty()) throw GgufError(what + ": a tensor needs at least one dimension");
    uint64_t n = 1;
    for (int64_t d : ne) {
        if (d <= 0) throw GgufError(what + ": dimension " + std::to_string(d) + " is not positive");
        if (mul_overflows(n, static_cast<uint64_t>(d), &n) || n > (uint64_t{1} << 56))
            throw GgufError(what + ": dimensions are absurdly large (element count overflows)");
    }
    if (ne[0] % t->block_values)
        throw GgufError(what + ": rows of " + std::to_string(ne[0]) + " values, but " + t->name +
                        " stores blocks of " + std::to_string(t->block_values));
    if (type == kI2_S) return n / 4 + 32;  // codes, then the float32 scale and padding
    return n / static_cast<uint64_t>(t->block_values) * static_cast<uint64_t>(t->block_bytes);
}

// path_ is the name as messages show it (the same unless it holds control bytes
// or is not UTF-8); `path` is what is opened.
GgufFile::GgufFile(const std::string& path) : path_(printable(path)) {
    if (path.find('\0') != std::string::npos)
        throw GgufError(path_ + ": cannot open: the path contains a NUL byte");
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw GgufError(path_ + ": cannot open: " + errno_message(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        const bool dir = S_ISDIR(st.st_mode);
        ::close(fd);
        throw GgufError(path_ + (dir ? ": is a directory, not a GGUF file"
                                    : ": not a regular file (a GGUF model is a file)"));
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ < 24) {
        ::close(fd);
        if (size_ == 0) throw GgufError(path_ + ": empty file (0 bytes): not a GGUF model");
        throw GgufError(path_ + ": truncated file: " + std::to_string(size_) +
                        " bytes is smaller than a GGUF header (24 bytes)");
    }
    map_ = map_file(fd, size_, path_);
    try {
        parse();
    } catch (...) {
        unmap_file(map_, size_);
        throw;
    }
}

GgufFile::~GgufFile() {
    if (map_) unmap_file(map_, size_);
}

void GgufFile::parse() {
    GgufCursor c(map_, size_, path_);
    if (c.read<uint32_t>("magic") != kMagic)
        throw GgufError(path_ + ": not a GGUF file (the first 4 bytes are not 'GGUF')");
    version_ = c.read<uint32_t>("version");
    if (version_ == __builtin_bswap32(2u) || version_ == __builtin_bswap32(3u))
        throw GgufError(path_ + ": a big-endian GGUF file; only little-endian files are "
                        "supported (re-export without --bigendian)");
    if (version_ != 2 && version_ != 3)
        throw GgufError(path_ + ": GGUF version " + std::to_string(version_) +
                        " is not supported (2 and 3 are); re-export the model");
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("metadata count");
    if (n_kv > c.remaining() / 13)  // key length + value type + one byte at least
        c.fail("metadata count " + std::to_string(n_kv) + " cannot fit in the " +
               std::to_string(c.remaining()) + " bytes left: truncated or corrupt");
    read_metadata(c, n_kv);
    if (n_tensors > c.remaining() / 32)  // name length, n_dims, ne[0], type, offset
        c.fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the " +
               std::to_string(c.remaining()) + " bytes left: truncated or corrupt");
    read_tensor_infos(c, n_tensors);
    place_tensors(c.pos());
}

void GgufFile::read_metadata(GgufCursor& c, uint64_t n_kv) {
    kv_.reserve(capped_reserve(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
        const std::string field = "metadata key #" + std::to_string(i);
        std::string key = c.string(field, kMaxKeyBytes);
        if (!valid_utf8(key)) c.fail(field + " is not valid UTF-8: corrupt file");
        const std::string shown = printable(key);
        const uint32_t type = c.read<uint32_t>("metadata '" + shown + "' type");
        GgufValue v = read_value(c, type, shown, 0);
        if (!kv_index_.emplace(key, kv_.size()).second)
            c.fail("metadata key '" + shown + "' appears twice");
        kv_.emplace_back(std::move(key), std::move(v));
    }
    if (const GgufValue* a = find_key("general.alignment")) {
        const std::string what = path_ + ": metadata 'general.alignment' must be a uint32 ";
        if (a->type != 4)
            throw GgufError(what + "but is a " + value_type_name(a->type) + ": corrupt file");
        const uint64_t al = static_cast<uint64_t>(a->i);
        if (al == 0 || (al & (al - 1)))
            throw GgufError(what + "power of two, got " + std::to_string(al));
        if (al < kMinAlignment || al > kMaxAlignment)
            throw GgufError(what + "multiple of 8 up to 1 MiB, got " + std::to_string(al));
        alignment_ = al;
    }
}

void GgufFile::read_tensor_infos(GgufCursor& c, uint64_t n_tensors) {
    tensors_.reserve(capped_reserve(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
        GgufTensor t;
        const std::string field = "tensor #" + std::to_string(i) + " name";
        t.name = c.string(field, kMaxKeyBytes);
        if (!valid_utf8(t.name)) c.fail(field + " is not valid UTF-8: corrupt file");
        const std::string shown = printable(t.name);
        const std::string what = path_ + ": tensor '" + shown + "'";
        const uint32_t n_dims = c.read<uint32_t>("tensor '" + shown + "' n_dims");
        if (n_dims == 0 || n_dims > kMaxDims)
            c.fail("tensor '" + shown + "' has " + std::to_string(n_dims) +
                   " dimensions; ggml allows 1 to 4: corrupt file");
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t v = c.read<uint64_t>("tensor '" + shown + "' dimension");
            if (v == 0 || v > (uint64_t{1} << 40))
                c.fail("tensor '" + shown + "' dimension " + std::to_string(d) + " is " +
                       std::to_string(v) + "; it must be 1 to 2^40: corrupt file");
            t.ne.push_back(static_cast<int64_t>(v));
        }
        t.type = c.read<uint32_t>("tensor '" + shown + "' type");
        t.offset = c.read<uint64_t>("tensor '" + shown + "' offset");
        t.nbytes = tensor_nbytes(t.type, t.ne, what);
        if (!tensor_index_.emplace(t.name, tensors_.size()).second)
            c.fail("tensor name '" + shown + "' appears twice");
        tensors_.push_back(std::move(t));
    }
}

// Checks that every tensor lies, aligned and without overlap, inside the data
// section, and points it into the mapping.
void GgufFile::place_tensors(uint64_t header_end) {
    const uint64_t data_start = (header_end + alignment_ - 1) / alignment_ * alignment_;
    if (data_start > size_ && !tensors_.empty())
        throw GgufError(path_ + ": truncated file: the data section would start at byte " +
                        std::to_string(data_start) + " of " + std::to_string(size_));
    const uint64_t data_size = data_start <= size_ ? size_ - data_start : 0;
    std::vector<const GgufTensor*> by_offset;
    for (GgufTensor& t : tensors_) {
        const std::string what =
            path_ + ": tensor '" + printable(t.name) + "' (" + type_name(t.type) + ")";
        if (t.offset % alignment_)
            throw GgufError(what + ": offset " + std::to_string(t.offset) +
                            " is not a multiple of the alignment " + std::to_string(alignment_));
        if (t.offset > data_size || t.nbytes > data_size - t.offset)
            throw GgufError(what + ": data [" + std::to_string(t.offset) + ", +" +
                            std::to_string(t.nbytes) + ") runs past the end of the file (" +
                            std::to_string(data_size) + " data bytes): truncated or corrupt");
        t.data = map_ + data_start + t.offset;
        by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        const GgufTensor& a = *by_offset[i - 1];
        const GgufTensor& b = *by_offset[i];
        if (a.offset + a.nbytes > b.offset)
            throw GgufError(path_ + ": tensors '" + printable(a.name) + "' and '" +
                            printable(b.name) + "' overlap: corrupt file");
    }
}

const GgufValue* GgufFile::find_key(const std::string& key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
    const GgufTensor* t = find_tensor(name);
    if (!t)
        throw GgufError(path_ + ": tensor '" + name +
                        "' is missing; the file is incomplete or for another architecture");
    return *t;
}

int64_t GgufFile::get_int(const std::string& key) const {
    const GgufValue* v = find_key(key);
    if (!v) throw GgufError(path_ + ": metadata '" + key + "' is missing");
    if (!is_int(*v)) throw GgufError(path_ + ": metadata '" + key + "' must be an integer");
    return v->i;
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
    return find_key(key) ? get_int(key) : fallback;
}

double GgufFile::get_float(const std::string& key) const {
    const GgufValue* v = find_key(key);
    if (!v) throw GgufError(path_ + ": metadata '" + key + "' is missing");
    if (v->type == 6 || v->type == 12) return v->f;
    if (is_int(*v)) return static_cast<double>(v->i);
    throw GgufError(path_ + ": metadata '" + key + "' must be a number");
}

double GgufFile::get_float(const std::string& key, double fallback) const {
    return find_key(key) ? get_float(key) : fallback;
}

std::string GgufFile::get_string(const std::string& key) const {
    const GgufValue* v = find_key(key);
    if (!v) throw GgufError(path_ + ": metadata '" + key + "' is missing");
    if (v->type != 8) throw GgufError(path_ + ": metadata '" + key + "' must be a string");
    return v->s;
}

std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
    return find_key(key) ? get_string(key) : fallback;
}

void GgufFile::release(const GgufTensor& t) const {
#ifdef TERNLAB_GGUF_HEAP_COPY
    (void)t;  // heap memory: MADV_DONTNEED would zero it
    return;
#endif
    // Only whole pages inside the tensor: its neighbours may still be in use.
    const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(t.data) + page - 1) / page * page;
    const uintptr_t hi = (reinterpret_cast<uintptr_t>(t.data) + t.nbytes) / page * page;
    if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

}  // namespace ternlab
