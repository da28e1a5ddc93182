"""The engine's GGUF loader (``_kernels.GGUFFile``): valid files read exactly as gguf-py reads
them; every corrupt, truncated or hostile file raises ``GGUFError`` naming the file and the
problem, never crashes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import gguf
import gguf_corpus as gc
import pytest

from ternlab.export.i2s import TernaryGGUFReader
from ternlab.inference import _kernels

GGUFFile, GGUFError = _kernels.GGUFFile, _kernels.GGUFError


def _reader_view(path: Path) -> dict:
    """What gguf-py's reader (taught I2_S by ternlab) reports, in the binding's terms."""
    r = TernaryGGUFReader(path)
    nested = [gguf.GGUFValueType.ARRAY] * 2
    # gguf-py's contents() flattens arrays of arrays: those are checked by value in the tests.
    meta = {
        k: None if f.types[:2] == nested else f.contents()
        for k, f in r.fields.items()
        if not k.startswith("GGUF.")
    }
    tensors, starts = [], set()
    for t in r.tensors:
        offset = int(t.field.parts[-1][0])
        starts.add(int(t.data_offset) - offset)
        tensors.append(
            {
                "name": t.name,
                "type": int(t.tensor_type),
                "shape": tuple(int(d) for d in reversed(t.shape)),  # numpy order
                "offset": offset,
                "nbytes": int(t.n_bytes),
            }
        )
    assert len(starts) <= 1  # one data section
    return {
        "version": int(r.fields["GGUF.version"].contents()),
        "alignment": r.alignment,
        "meta": meta,
        "tensors": tensors,
        "data_start": starts.pop() if starts else None,
    }


def _same_typed(a: object, b: object) -> bool:
    """Equal values of the same Python types, lists compared element by element."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_typed(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def assert_matches_gguf_py(path: Path) -> GGUFFile:
    """Opens ``path`` with the engine and checks it against gguf-py field by field."""
    f, want = GGUFFile(str(path)), _reader_view(path)
    assert f.version == want["version"] and f.alignment == want["alignment"]
    assert f.file_size == path.stat().st_size
    meta = f.metadata
    assert list(meta) == list(want["meta"])  # file order
    for key, value in want["meta"].items():
        assert value is None or _same_typed(meta[key], value), (key, meta[key], value)
    got = [{k: t[k] for k in ("name", "type", "shape", "offset", "nbytes")} for t in f.tensors]
    assert got == want["tensors"]
    for t in f.tensors:
        assert t["type_name"] == _kernels.type_name(t["type"])
        assert t["offset"] % f.alignment == 0
    if want["data_start"] is not None:
        assert want["data_start"] % f.alignment == 0
        end = max(want["data_start"] + t["offset"] + t["nbytes"] for t in got)
        assert end <= f.file_size
    return f


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _expect_error(path: Path, match: str) -> str:
    """Opening (and reading everything from) ``path`` raises GGUFError naming it and ``match``."""
    with pytest.raises(GGUFError) as e:
        f = GGUFFile(str(path))
        f.metadata, f.tensors  # noqa: B018 - a lazily failing accessor must fail here too
    msg = str(e.value)
    assert str(path) in msg, msg
    assert re.search(match, msg), f"{match!r} not in {msg!r}"
    return msg


# --- valid files ----------------------------------------------------------------------------


def test_gguf_py_writer_file(tmp_path):
    """Every value type and the tensor types the engine reads, as gguf-py writes them."""
    path = tmp_path / "gguf-py.gguf"
    gc.write_gguf_py(path)
    f = assert_matches_gguf_py(path)
    assert {t["type_name"] for t in f.tensors} == {"F32", "F16", "Q8_0", "TQ2_0", "TQ1_0", "I2_S"}
    assert f.metadata["t.str"] == "héllo" and f.metadata["t.bools"] == [True, False]


def test_built_sample_file(tmp_path):
    """The hand-built file every corruption starts from is itself valid (also to gguf-py)."""
    data, lay = gc.sample_file()
    f = assert_matches_gguf_py(_write(tmp_path / "s.gguf", data))
    assert len(f.tensors) == len(gc.sample_tensors())
    assert [t["offset"] + lay.data_start for t in f.tensors] == [s for s, _ in lay.tensor_ranges]
    assert f.metadata["t.nested"] == [[1, 2], []]


@pytest.mark.parametrize("alignment", [8, 64, 4096])
def test_declared_alignment(tmp_path, alignment):
    kvs = [*gc.sample_kvs(), gc.kv("general.alignment", gc.U32, alignment)]
    data, lay = gc.build(kvs, gc.sample_tensors(), alignment=alignment)
    f = assert_matches_gguf_py(_write(tmp_path / "a.gguf", data))
    assert f.alignment == alignment and lay.data_start % alignment == 0


def test_version_2_and_edge_values(tmp_path):
    kvs = [
        gc.kv("u64.max_ok", gc.U64, 2**63 - 1),
        gc.kv("deep8", gc.ARR, _nested_ok(8)),
        gc.kv("empty", gc.STR, ""),
        gc.kv("empty.arr", gc.ARR, (gc.F32, [])),
    ]
    f = assert_matches_gguf_py(_write(tmp_path / "v2.gguf", gc.build(kvs, [], version=2)[0]))
    assert f.version == 2 and f.metadata["u64.max_ok"] == 2**63 - 1 and f.tensors == []
    assert f.metadata["deep8"] == [[[[[[[[7]]]]]]]]


def _nested_ok(depth: int) -> tuple:
    v: tuple = (gc.U8, [7])
    for _ in range(depth - 1):
        v = (gc.ARR, [v])
    return v


def test_minimal_file(tmp_path):
    path = _write(tmp_path / "m.gguf", gc.build([], [])[0])
    f = GGUFFile(str(path))
    assert (f.version, f.metadata, f.tensors, f.file_size) == (3, {}, [], 24)
    assert GGUFFile(path).path == GGUFFile(bytes(path)).path == str(path)  # any os path


def test_type_names():
    assert [_kernels.type_name(i) for i in (0, 1, 8, 34, 35, 36)] == [
        "F32",
        "F16",
        "Q8_0",
        "TQ1_0",
        "TQ2_0",
        "I2_S",
    ]
    assert _kernels.type_name(99) == "type 99"
    assert issubclass(GGUFError, ValueError)


# --- ternlab's own exports ------------------------------------------------------------------


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    return gc.ternlab_exports(tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("qtype", ["i2_s", "tq2_0", "tq1_0", "f16", "q8_0"])
def test_ternlab_export(exports, qtype):
    f = assert_matches_gguf_py(exports[qtype])
    want = {"i2_s": "I2_S", "tq2_0": "TQ2_0", "tq1_0": "TQ1_0", "f16": "F16", "q8_0": "Q8_0"}
    assert want[qtype] in {t["type_name"] for t in f.tensors}
    assert f.metadata["general.architecture"] == "bitnet"
    assert len(f.metadata["tokenizer.ggml.tokens"]) == f.metadata["bitnet.vocab_size"]


@pytest.mark.slow
def test_ternlab_export_truncated(exports, tmp_path):
    """Cuts through a real export: its first 600 bytes, then 300 points through the tokenizer
    metadata and the tensor infos, and 60 through the tensor data."""
    data = exports["tq2_0"].read_bytes()
    want = _reader_view(exports["tq2_0"])
    start = want["data_start"]
    data_end = max(start + t["offset"] + t["nbytes"] for t in want["tensors"])
    path = tmp_path / "cut.gguf"
    cuts = [
        *range(600),
        *range(600, start + 1, max(1, start // 300)),
        *range(start, data_end, max(1, (data_end - start) // 60)),
        data_end - 1,
    ]
    for cut in cuts:
        _expect_error(_write(path, data[:cut]), r"truncated|empty file")


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", gc.bad_files(), ids=lambda b: b.name)
def test_bad_file(tmp_path, bad):
    _expect_error(_write(tmp_path / f"{bad.name}.gguf", bad.data), bad.match)


def test_truncated_at_every_header_byte_and_in_the_data(tmp_path):
    data, lay = gc.sample_file()
    path = tmp_path / "cut.gguf"
    cuts = list(gc.truncations(data, lay))
    assert len(cuts) > lay.data_start
    for cut in cuts:
        _expect_error(_write(path, data[:cut]), r"truncated|empty file")


def test_gguf_py_file_truncated_at_every_header_byte(tmp_path):
    src = tmp_path / "gguf-py.gguf"
    gc.write_gguf_py(src)
    data, want = src.read_bytes(), _reader_view(src)
    data_end = max(want["data_start"] + t["offset"] + t["nbytes"] for t in want["tensors"])
    path = tmp_path / "cut.gguf"
    for cut in [*range(want["data_start"] + 1), *range(want["data_start"], data_end, 37)]:
        _expect_error(_write(path, data[:cut]), r"truncated|empty file")


@pytest.mark.parametrize("where", ["value", "array"])
def test_invalid_utf8_value_raises_on_metadata_access(tmp_path, where):
    bad = b"ok\xc3("  # a lead byte followed by ASCII
    entry = gc.kv("s", gc.STR, bad) if where == "value" else gc.kv("s", gc.ARR, (gc.STR, [bad]))
    path = _write(tmp_path / "u.gguf", gc.build([*gc.sample_kvs(), entry], gc.sample_tensors())[0])
    f = GGUFFile(str(path))  # opening works: C++ users can still read the other keys
    assert len(f.tensors) == len(gc.sample_tensors())
    with pytest.raises(GGUFError, match=r"metadata 's' is a string that is not valid UTF-8") as e:
        f.metadata  # noqa: B018
    assert str(path) in str(e.value)


def test_missing_path(tmp_path):
    _expect_error(tmp_path / "nope.gguf", r"cannot open: No such file")


def test_path_with_nul():
    with pytest.raises(GGUFError, match=r"a\\x00b: cannot open: the path contains a NUL byte"):
        GGUFFile("a\0b")


def test_path_not_utf8(tmp_path):
    """The message keeps a name Python could not decode, escaped."""
    path = os.fsencode(tmp_path) + b"/caf\xe9.gguf"
    with pytest.raises(GGUFError, match=r"caf\\xe9.gguf: cannot open: No such file"):
        GGUFFile(path)
    with open(path, "wb") as out:
        out.write(gc.sample_file()[0])
    assert GGUFFile(path).path.endswith("caf\\xe9.gguf")


def test_directory(tmp_path):
    _expect_error(tmp_path, r"is a directory")


def test_fifo_does_not_block(tmp_path):
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    _expect_error(fifo, r"not a regular file")


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    path = _write(tmp_path / "secret.gguf", gc.sample_file()[0])
    path.chmod(0)
    _expect_error(path, r"cannot open: Permission denied")
