"""GGUF bytes for the loader's robustness tests: valid files and one-fault corruptions.

:func:`build` assembles a GGUF file field by field (ggml's docs/gguf.md, little-endian), so a
test can break exactly one field and keep the rest well-formed. :func:`write_gguf_py` writes a
valid file with gguf-py's own ``GGUFWriter``, the independent writer. :func:`bad_files` lists
every corruption the loader must refuse, each with a regex for its error message.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"GGUF"
# GGUF value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_SCALAR = {
    U8: "<B",
    I8: "<b",
    U16: "<H",
    I16: "<h",
    U32: "<I",
    I32: "<i",
    F32: "<f",
    BOOL: "<B",
    U64: "<Q",
    I64: "<q",
    F64: "<d",
}
# ggml tensor type ids and (values per block, bytes per block); I2_S is n / 4 + 32 bytes.
T_F32, T_F16, T_Q8_0, T_TQ1_0, T_TQ2_0, T_I2_S = 0, 1, 8, 34, 35, 36
BIG = 2**63
_MAX_BODY = 1 << 24


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def gstr(s: str | bytes) -> bytes:
    """A GGUF string: u64 length, then the bytes (no terminator)."""
    b = s.encode() if isinstance(s, str) else s
    return u64(len(b)) + b


def value(vtype: int, v: Any) -> bytes:
    """The payload of one value of ``vtype`` (arrays: ``(element_type, [items])``)."""
    if vtype == STR:
        return gstr(v)
    if vtype == ARR:
        etype, items = v
        return u32(etype) + u64(len(items)) + b"".join(value(etype, i) for i in items)
    return struct.pack(_SCALAR[vtype], v)


def kv(key: str | bytes, vtype: int, v: Any) -> bytes:
    """One metadata entry: key, value type, value."""
    return gstr(key) + u32(vtype) + value(vtype, v)


@dataclass
class Tensor:
    """A tensor to place in a built file; ``ne`` in ggml order (``ne[0]`` innermost)."""

    name: str | bytes
    ne: list[int]
    ttype: int
    data: bytes
    offset: int | None = None  # None: the next aligned offset after the previous tensor

    def info(self, offset: int) -> bytes:
        dims = b"".join(u64(d) for d in self.ne)
        return gstr(self.name) + u32(len(self.ne)) + dims + u32(self.ttype) + u64(offset)


@dataclass
class Layout:
    """Where the parts of a built file lie (for cutting and patching it)."""

    header_end: int  # end of the tensor infos
    data_start: int
    tensor_ranges: list[tuple[int, int]] = field(default_factory=list)  # absolute [start, end)

    @property
    def data_end(self) -> int:
        return max((e for _, e in self.tensor_ranges), default=self.header_end)


def _pad(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def build(
    kvs: list[bytes],
    tensors: list[Tensor],
    *,
    version: int = 3,
    alignment: int = 32,
) -> tuple[bytes, Layout]:
    """A GGUF file and its layout. ``alignment`` is the one used for padding (add a
    ``general.alignment`` entry to ``kvs`` to declare another). A tensor's ``offset`` may be
    set to place it anywhere, even overlapping or past the end."""
    offsets, at = [], 0
    for t in tensors:
        off = _pad(at, alignment) if t.offset is None else t.offset
        offsets.append(off)
        if off + len(t.data) <= _MAX_BODY:  # a huge test offset places no data
            at = max(at, off + len(t.data))
    head = MAGIC + u32(version) + u64(len(tensors)) + u64(len(kvs))
    head += b"".join(kvs) + b"".join(t.info(o) for t, o in zip(tensors, offsets, strict=True))
    data_start = _pad(len(head), alignment)
    body = bytearray(_pad(at, alignment) if tensors else 0)
    for t, o in zip(tensors, offsets, strict=True):
        if o + len(t.data) <= _MAX_BODY:
            body[o : o + len(t.data)] = t.data
    lay = Layout(len(head), data_start)
    lay.tensor_ranges = [
        (data_start + o, data_start + o + len(t.data))
        for t, o in zip(tensors, offsets, strict=True)
    ]
    pad = b"\0" * (data_start - len(head)) if tensors else b""
    return head + pad + bytes(body), lay


def sample_kvs() -> list[bytes]:
    """Metadata with every value type, arrays of numbers and strings, and a nested array."""
    return [
        kv("general.architecture", STR, "llama"),
        kv("general.name", STR, "corpus ✓"),
        kv("t.u8", U8, 200),
        kv("t.i8", I8, -100),
        kv("t.u16", U16, 60000),
        kv("t.i16", I16, -30000),
        kv("t.u32", U32, 4_000_000_000),
        kv("t.i32", I32, -2_000_000_000),
        kv("t.f32", F32, 0.1),
        kv("t.bool", BOOL, 1),
        kv("t.u64", U64, 2**62 + 3),
        kv("t.i64", I64, -(2**62)),
        kv("t.f64", F64, -2.5e300),
        kv("t.ints", ARR, (I32, [1, -2, 3])),
        kv("t.strs", ARR, (STR, ["a", "", "ü"])),
        kv("t.nested", ARR, (ARR, [(U8, [1, 2]), (U8, [])])),
    ]


def sample_tensors() -> list[Tensor]:
    """One tensor of each type the engine reads, with arbitrary bytes of the right size."""
    rng = np.random.default_rng(0)

    def raw(n: int) -> bytes:
        return rng.integers(0, 256, n, dtype=np.uint8).tobytes()

    f16 = rng.standard_normal(8).astype("<f2").tobytes()
    f32 = rng.standard_normal(12).astype("<f4").tobytes()
    return [
        Tensor("a.f32", [4, 3], T_F32, f32),
        Tensor("b.f16", [8], T_F16, f16),
        Tensor("c.q8_0", [32, 2], T_Q8_0, raw(68)),
        Tensor("d.tq2_0", [256], T_TQ2_0, raw(66)),
        Tensor("e.tq1_0", [256, 1], T_TQ1_0, raw(54)),
        Tensor("f.i2_s", [128, 2], T_I2_S, raw(256 // 4 + 32)),
    ]


def sample_file() -> tuple[bytes, Layout]:
    """The valid file most corruptions start from."""
    return build(sample_kvs(), sample_tensors())


def write_gguf_py(path: Path) -> None:
    """A valid file written by gguf-py's ``GGUFWriter`` (every value type, F32/F16/Q8_0/TQ*
    tensors and one I2_S tensor through ternlab's exporter helper)."""
    import gguf
    from gguf.quants import quantize

    from ternlab.export.i2s import add_i2s_tensor

    Q = gguf.GGMLQuantizationType
    V = gguf.GGUFValueType
    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("gguf-py corpus")
    w.add_uint8("t.u8", 7)
    w.add_int8("t.i8", -7)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -32768)
    w.add_uint32("t.u32", 2**32 - 1)
    w.add_int32("t.i32", -(2**31))
    w.add_float32("t.f32", 1.25)
    w.add_bool("t.bool", True)
    w.add_uint64("t.u64", 2**40)
    w.add_int64("t.i64", -(2**40))
    w.add_float64("t.f64", 3.5)
    w.add_string("t.str", "héllo")
    w.add_array("t.ints", [3, 1, 4, 1, 5])
    w.add_array("t.floats", [0.5, -1.5])
    w.add_array("t.strs", ["x", "yy", ""])
    w.add_key_value("t.bools", [True, False], V.ARRAY, sub_type=V.BOOL)
    w.add_tensor("tok.f32", rng.standard_normal((3, 4)).astype(np.float32))
    w.add_tensor("tok.f16", rng.standard_normal((2, 64)).astype(np.float16))
    x = rng.standard_normal((2, 256)).astype(np.float32)
    for qt in (Q.Q8_0, Q.TQ2_0, Q.TQ1_0):
        w.add_tensor(f"w.{qt.name.lower()}", quantize(x, qt), raw_dtype=qt)
    codes = rng.integers(-1, 2, (4, 128)).astype(np.int8)
    add_i2s_tensor(w, "w.i2_s", codes, 0.75)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --- corruptions -----------------------------------------------------------------------------


@dataclass
class Bad:
    """A corrupt file and a regex its GGUFError message must match (besides the path)."""

    name: str
    data: bytes
    match: str


def _with_kvs(extra: list[bytes], tensors: list[Tensor] | None = None, **kw) -> bytes:
    return build(sample_kvs() + extra, sample_tensors() if tensors is None else tensors, **kw)[0]


def _one_tensor(
    ne: list[int], ttype: int, nbytes: int = 64, name: str | bytes = "x", **kw
) -> bytes:
    return build(sample_kvs(), [Tensor(name, ne, ttype, bytes(nbytes), **kw)])[0]


def _nested(depth: int) -> bytes:
    v: tuple = (U8, [1])
    for _ in range(depth - 1):
        v = (ARR, [v])
    return kv("deep", ARR, v)


def _patched(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def bad_files() -> list[Bad]:
    """Every corruption the loader must refuse with a clear message."""
    good, lay = sample_file()
    t = sample_tensors()
    two = [Tensor("p", [32], T_F32, bytes(128)), Tensor("q", [32], T_F32, bytes(128), offset=64)]
    cases = [
        Bad("empty", b"", r"empty|smaller than a GGUF header"),
        Bad("header-only-magic", MAGIC, r"truncated|smaller than a GGUF header"),
        Bad("wrong-magic", b"GGUG" + good[4:], r"not a GGUF file"),
        Bad("zero-magic", bytes(4) + good[4:], r"not a GGUF file"),
        Bad("version-1", _patched(good, 4, u32(1)), r"version 1 is not supported"),
        Bad("version-99", _patched(good, 4, u32(99)), r"version 99 is not supported"),
        Bad("big-endian", _patched(good, 4, struct.pack(">I", 3)), r"big-endian"),
        Bad("tensor-count-2^63", _patched(good, 8, u64(BIG)), r"tensor count \d+"),
        Bad("tensor-count-max", _patched(good, 8, u64(2**64 - 1)), r"tensor count \d+"),
        Bad("kv-count-2^63", _patched(good, 16, u64(BIG)), r"metadata count \d+"),
        Bad("key-length-2^63", _with_kvs([u64(BIG) + b"k" + u32(U8) + b"\1"]), r"key #16 length"),
        Bad(
            "string-length-2^63",
            _with_kvs([gstr("s") + u32(STR) + u64(BIG) + b"abc"]),
            r"'s' length \d+",
        ),
        Bad(
            "string-length-past-end",
            _with_kvs([gstr("s") + u32(STR) + u64(len(good))]),
            r"'s' length \d+",
        ),
        Bad(
            "array-length-2^63",
            _with_kvs([gstr("a") + u32(ARR) + u32(U8) + u64(BIG)]),
            r"'a'.*array length \d+",
        ),
        Bad(
            "array-of-strings-length-2^63",
            _with_kvs([gstr("a") + u32(ARR) + u32(STR) + u64(BIG)]),
            r"array length \d+",
        ),
        Bad("nested-arrays-deep", _with_kvs([_nested(9)]), r"'deep'.*nested more than 8 deep"),
        Bad(
            "nested-arrays-very-deep", _with_kvs([_nested(200)]), r"'deep'.*nested more than 8 deep"
        ),
        Bad(
            "unknown-value-type",
            _with_kvs([gstr("v") + u32(13) + u64(0)]),
            r"'v'.*unknown value type 13",
        ),
        Bad(
            "unknown-value-type-huge",
            _with_kvs([gstr("v") + u32(2**32 - 1) + u64(0)]),
            r"unknown value type",
        ),
        Bad(
            "unknown-array-type",
            _with_kvs([gstr("v") + u32(ARR) + u32(13) + u64(1)]),
            r"'v'.*unknown array element type 13",
        ),
        Bad("bool-2", _with_kvs([kv("b", BOOL, 2)]), r"'b'.*bool value 2 is not 0 or 1"),
        Bad("bool-array-255", _with_kvs([kv("b", ARR, (BOOL, [0, 255]))]), r"'b'.*bool value 255"),
        Bad("u64-above-int64", _with_kvs([kv("u", U64, 2**64 - 1)]), r"'u'.*out of range"),
        Bad("key-with-nul", _with_kvs([kv(b"a\0b", BOOL, 2)]), r"'a\\x00b'.*bool value 2"),
        Bad("duplicate-key", _with_kvs([kv("t.u8", U8, 1)]), r"'t.u8' appears twice"),
        Bad("key-invalid-utf8", _with_kvs([kv(b"k\xff", U8, 1)]), r"key .* not valid UTF-8"),
        Bad(
            "alignment-not-pow2",
            _with_kvs([kv("general.alignment", U32, 48)], alignment=48),
            r"general.alignment.*power of two.*48",
        ),
        Bad(
            "alignment-zero",
            _with_kvs([kv("general.alignment", U32, 0)]),
            r"general.alignment.*power of two",
        ),
        Bad(
            "alignment-one",
            _with_kvs([kv("general.alignment", U32, 1)], alignment=1),
            r"general.alignment.*multiple of 8",
        ),
        Bad(
            "alignment-huge", _with_kvs([kv("general.alignment", U32, 2**31)]), r"general.alignment"
        ),
        Bad(
            "alignment-string",
            _with_kvs([kv("general.alignment", STR, "32")]),
            r"general.alignment.*uint32.*string",
        ),
        Bad(
            "alignment-u64",
            _with_kvs([kv("general.alignment", U64, 32)]),
            r"general.alignment.*uint32.*uint64",
        ),
        Bad("tensor-name-with-nul", _one_tensor([], T_F32, name=b"w\0x"), r"'w\\x00x' has 0 dim"),
        Bad("n-dims-0", _one_tensor([], T_F32), r"'x' has 0 dimensions"),
        Bad("n-dims-5", _one_tensor([1, 1, 1, 1, 1], T_F32), r"'x' has 5 dimensions"),
        Bad("dimension-0", _one_tensor([16, 0], T_F32), r"'x' dimension 1 is 0"),
        Bad("dimension-2^50", _one_tensor([2**50], T_F32), r"'x' dimension 0 is \d+"),
        Bad("dimension-2^63", _one_tensor([4, 2**63], T_F32), r"'x' dimension 1 is \d+"),
        Bad("elements-overflow", _one_tensor([2**40, 2**40, 2**40], T_F32), r"'x'.*absurdly large"),
        Bad("unknown-tensor-type-99", _one_tensor([16], 99), r"'x'.*unknown tensor type id 99"),
        Bad("unknown-tensor-type-big", _one_tensor([16], 2**32 - 1), r"unknown tensor type id"),
        Bad("row-not-whole-blocks", _one_tensor([33], T_Q8_0, 68), r"'x'.*33 values.*Q8_0.*32"),
        Bad(
            "row-not-whole-tq2", _one_tensor([128, 2], T_TQ2_0, 132), r"'x'.*128 values.*TQ2_0.*256"
        ),
        Bad(
            "offset-unaligned",
            _one_tensor([16], T_F32, offset=4),
            r"'x'.*offset 4 is not a multiple of the alignment 32",
        ),
        Bad("offset-past-end", _one_tensor([16], T_F32, offset=2**40), r"'x'.*past the end"),
        Bad("offset-2^64-32", _one_tensor([16], T_F32, offset=2**64 - 32), r"'x'.*past the end"),
        Bad(
            "size-past-end",
            build(sample_kvs(), [Tensor("x", [16], T_F32, bytes(32))])[0],
            r"'x'.*past the end",
        ),
        Bad("overlap", build(sample_kvs(), two)[0], r"'p' and 'q' overlap"),
        Bad(
            "same-offset",
            build(sample_kvs(), [two[0], Tensor("q", [8], T_F32, bytes(32), offset=0)])[0],
            r"overlap",
        ),
        Bad(
            "duplicate-tensor",
            build(sample_kvs(), [t[0], Tensor("a.f32", [4], T_F32, bytes(16))])[0],
            r"tensor name 'a.f32' appears twice",
        ),
        Bad(
            "tensor-name-invalid-utf8",
            build(sample_kvs(), [Tensor(b"w\xc3", [4], T_F32, bytes(16))])[0],
            r"tensor #0 name.*not valid UTF-8",
        ),
        Bad("tensor-name-2^63", _tensor_name_len(good), r"tensor #0 name length"),
        Bad("data-cut", good[: lay.tensor_ranges[-1][1] - 1], r"truncated"),
    ]
    return cases


def _tensor_name_len(good: bytes) -> bytes:
    """The sample file with the first tensor name's length set to 2^63."""
    kv_end = 24 + len(b"".join(sample_kvs()))
    return _patched(good, kv_end, u64(BIG))


def truncations(data: bytes, lay: Layout, data_samples: int = 40) -> Iterator[int]:
    """Cut points: every byte up to the data section, then a sample inside the tensors."""
    yield from range(lay.data_start + 1)
    span = lay.data_end - lay.data_start
    step = max(1, span // data_samples)
    yield from range(lay.data_start + 1, lay.data_end, step)
    yield lay.data_end - 1


_INTERESTING_U64 = [
    0,
    1,
    2,
    3,
    4,
    8,
    12,
    13,
    31,
    32,
    255,
    256,
    2**31,
    2**32 - 1,
    2**32,
    2**40,
    2**56,
    2**63 - 1,
    2**63,
    2**64 - 1,
]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random mutation of ``data`` (the fallback fuzzer's moves, libFuzzer-like): byte
    flips and sets, an interesting 32/64-bit value written over a field, a cut, an insertion,
    a deletion or a duplicated chunk."""
    b = bytearray(data) or bytearray(b"\0")
    at = int(rng.integers(len(b)))
    move = int(rng.integers(7))
    if move == 0:
        b[at] ^= 1 << int(rng.integers(8))
    elif move == 1:
        b[at] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF, int(rng.integers(256))]))
    elif move == 2:
        v = int(rng.choice(_INTERESTING_U64))
        width = 8 if rng.integers(2) else 4
        b[at : at + width] = (v % 2 ** (8 * width)).to_bytes(width, "little")
    elif move == 3:
        del b[at:]
    elif move == 4:
        b[at:at] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
    elif move == 5:
        del b[at : at + int(rng.integers(1, 17))]
    else:
        n = int(rng.integers(1, 65))
        b[at:at] = b[int(rng.integers(len(b))) :][:n]
    return bytes(b)


# --- structure-aware mutations of a real model file -----------------------------------------

#: (values per block, bytes per block) of the tensor types a model file holds.
_BLOCKS = {T_F32: (1, 4), T_F16: (1, 2), T_Q8_0: (32, 34), T_TQ1_0: (256, 54), T_TQ2_0: (256, 66)}


def tensor_nbytes(ttype: int, ne: list[int]) -> int:
    """Bytes of a tensor (ggml sizes; I2_S: n / 4 + 32)."""
    n = int(np.prod(ne))
    if ttype == T_I2_S:
        return n // 4 + 32
    per, nbytes = _BLOCKS[ttype]
    return n // per * nbytes


@dataclass
class ModelParts:
    """A model file taken apart: metadata as ``(key, vtype, value)`` and its tensors."""

    kvs: list[tuple[str, int, object]]
    tensors: list[Tensor]

    @classmethod
    def read(cls, path: Path) -> ModelParts:
        from ternlab.export.i2s import TernaryGGUFReader

        r = TernaryGGUFReader(path)
        kvs: list[tuple[str, int, object]] = []
        for key, f in r.fields.items():
            if key.startswith("GGUF."):
                continue
            vtype = int(f.types[0])
            v = f.contents()
            kvs.append((key, vtype, (int(f.types[1]), v) if vtype == ARR else v))
        tensors = [
            Tensor(t.name, [int(d) for d in t.shape], int(t.tensor_type), bytes(t.data.tobytes()))
            for t in r.tensors
        ]
        return cls(kvs, tensors)

    def build(self) -> bytes:
        return build([kv(k, t, v) for k, t, v in self.kvs], self.tensors)[0]


_NUMBERS = [0, 1, 2, 3, 7, 64, 255, 256, 4097, 2**31 - 1, 2**31, 2**32 - 1]
_FLOATS = [0.0, -0.0, -1.0, 1e-30, 1e30, float("nan"), float("inf"), float("-inf")]
_RANGES = {
    U8: (0, 255),
    I8: (-128, 127),
    U16: (0, 2**16 - 1),
    I16: (-(2**15), 2**15 - 1),
    U32: (0, 2**32 - 1),
    I32: (-(2**31), 2**31 - 1),
    U64: (0, 2**63 - 1),
    I64: (-(2**63), 2**63 - 1),
    BOOL: (0, 1),
}


def _mutate_value(key: str, vtype: int, v: Any, rng: np.random.Generator) -> tuple:
    """The same key with an edge value of its type (arrays: cut short)."""
    if vtype in (F32, F64):
        return key, vtype, float(rng.choice([*_FLOATS, float(v) * 2, float(v) / 2]))
    if vtype in _RANGES:
        lo, hi = _RANGES[vtype]
        picks = [n for n in [*_NUMBERS, lo, hi, int(v) - 1, int(v) + 1, -int(v)] if lo <= n <= hi]
        return key, vtype, picks[int(rng.integers(len(picks)))]
    if vtype == ARR:
        etype, items = v
        return key, vtype, (etype, items[: int(rng.integers(len(items) + 1))])
    return key, vtype, str(rng.choice(["", "llama", "bitnet", "bitnet-b1.58", "x" * 300]))


def _retype(key: str, vtype: int, v: Any, rng: np.random.Generator) -> tuple:
    """The same key with a value of another type."""
    choice = int(rng.integers(4))
    if choice == 0:
        return key, STR, str(v)[:50]
    if choice == 1:
        return key, F32, 3.0
    if choice == 2:
        return key, I64, -1
    return key, ARR, (U32, [1, 2])


def _mutate_tensor(t: Tensor, rng: np.random.Generator) -> Tensor | None:
    """A changed copy of ``t`` that the GGUF loader still accepts (or None: drop it)."""
    ne, ttype = list(t.ne), t.ttype
    move = int(rng.integers(6))
    if move == 0:
        return None
    if move == 1 and len(ne) > 1:
        ne[0], ne[1] = ne[1], ne[0]
    elif move == 2:
        ne[-1] = max(1, ne[-1] + int(rng.choice([-1, 1, ne[-1]])))
    elif move == 3:
        ne = ne[:1] if len(ne) > 1 else [*ne, 2]
    elif move == 4:
        ttype = int(rng.choice([T_F32, T_F16, T_Q8_0, T_TQ2_0, T_TQ1_0, T_I2_S]))
    else:  # corrupt the data: NaN/inf halves and floats, invalid 2-bit fields
        data = bytearray(t.data)
        for _ in range(int(rng.integers(1, 9))):
            at = int(rng.integers(len(data) - 1))
            data[at : at + 2] = rng.choice([b"\x00\x7e", b"\x00\x7c", b"\xff\xff", b"\x00\x00"])
        return Tensor(t.name, ne, ttype, bytes(data))
    block = 256 if ttype in (T_TQ1_0, T_TQ2_0) else 128 if ttype == T_I2_S else 32
    if ttype not in (T_F32, T_F16) and ne[0] % block:
        return Tensor(t.name, t.ne, t.ttype, t.data)  # not storable: leave it
    n = tensor_nbytes(ttype, ne)
    data = (t.data * (n // max(1, len(t.data)) + 1))[:n]
    return Tensor(t.name, ne, ttype, data)


def model_mutant(parts: ModelParts, rng: np.random.Generator) -> bytes:
    """``parts`` with one to three structural changes: a hyperparameter, tokenizer array or
    special token id set to an edge value or another type, a key dropped, a tensor reshaped,
    retyped, renamed, dropped or its data corrupted. The result is a well-formed GGUF file, so
    it reaches the model loader's own checks."""
    kvs, tensors = list(parts.kvs), list(parts.tensors)
    for _ in range(int(rng.integers(1, 4))):
        if rng.integers(2) and kvs:
            i = int(rng.integers(len(kvs)))
            move = int(rng.integers(6))
            if move == 0:
                del kvs[i]
            elif move == 1:
                kvs[i] = _retype(*kvs[i], rng)
            else:
                kvs[i] = _mutate_value(*kvs[i], rng)
        elif tensors:
            i = int(rng.integers(len(tensors)))
            if rng.integers(6) == 0:
                tensors[i] = Tensor(
                    tensors[i].name.replace("blk.0", "blk.9"),
                    tensors[i].ne,
                    tensors[i].ttype,
                    tensors[i].data,
                )
                continue
            t = _mutate_tensor(tensors[i], rng)
            if t is None:
                del tensors[i]
            else:
                tensors[i] = t
    return ModelParts(kvs, tensors).build()


# --- real exports, shared by a pytest session -----------------------------------------------


def ternlab_exports(tmp_path_factory) -> dict[str, Path]:
    """ternlab's exports of tiny trained models, made once per pytest session: the engine
    tests' ternary checkpoint as i2_s, tq2_0 and tq1_0, and a full-precision (quant=none)
    one as f16 and q8_0."""
    from engine_helpers import engine_model

    i2s, ternary = engine_model(tmp_path_factory)
    out = tmp_path_factory.getbasetemp() / "gguf-exports"
    files = {"i2_s": i2s, **{q: out / f"m-{q}.gguf" for q in ("tq2_0", "tq1_0", "f16", "q8_0")}}
    if all(p.exists() for p in files.values()):
        return files
    from export_helpers import quick_checkpoint

    from ternlab.export.gguf_export import export_gguf

    fp = quick_checkpoint(
        out,
        "quant=none",
        "model.hidden_size=256",
        "model.intermediate_size=512",
        "model.hidden_act=silu",
        "model.tie_word_embeddings=true",
    )
    for qtype in ("tq2_0", "tq1_0", "f16", "q8_0"):
        export_gguf(ternary if qtype.startswith("tq") else fp, files[qtype], qtype, verify=False)
    return files
