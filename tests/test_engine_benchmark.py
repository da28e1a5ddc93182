"""benchmarks/engine_vs_llamacpp.py on a small shape: every JSON field, and the figures it
derives agree with the file and the measured speeds. Also the random-weight files and
``_kernels.read_bandwidth`` (timings themselves are not checked)."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import engine_vs_llamacpp as bench  # noqa: E402
import llama_bench_peer as peer  # noqa: E402
import random_gguf  # noqa: E402

from ternlab.export.codec import decode_float, decode_ternary  # noqa: E402
from ternlab.export.i2s import TernaryGGUFReader  # noqa: E402

SMALL = random_gguf.SHAPES["small"]
TOP_KEYS = {
    "benchmark", "timestamp", "shape", "arch", "seed", "n_prompt", "n_gen", "n_gen_f16",
    "n_ctx", "repetitions", "threads", "engines", "types", "machine", "read_bandwidth_gbs",
    "read_bandwidth_gbs_runs", "int8_mac_peak_gmacs", "load_average", "files", "results",
    "ratios", "goals", "wall_s", "waited_s", "peers",
}  # fmt: skip
ROW_KEYS = {"engine", "type", "threads", "load_s", "pp", "tg", "decode_gbs", "decode_bw_fraction",
            "decode_read_gbs", "decode_read_bw_fraction", "other_cpu_cores",
            "layout", "isa", "read_bandwidth_gbs_adjacent",
            "decode_read_bw_fraction_adjacent"}  # fmt: skip
PHASE_KEYS = {"n_tokens", "tokens_per_s", "tokens_per_s_runs", "ms_per_token", "seconds_runs"}
MACHINE_KEYS = {"cpu", "logical_cpus", "isa_flags", "memory_bytes", "platform", "python", "numpy"}


def _linear_bytes(shape, bytes_per_256: float) -> int:
    per_layer = sum(o * i for o, i in random_gguf.linear_shapes(shape).values())
    return int(shape.layers * per_layer // 256 * bytes_per_256)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "r.json"
    argv = ["--shape", "small", "--types", "tq2_0,i2_s+q8_0,q4_0", "--threads", "1,2",
            "--reps", "2", "--n-prompt", "16", "--n-gen", "8", "--bandwidth-mib", "64",
            "--cache-dir", str(tmp / "cache"), "-o", str(out), "--no-table"]  # fmt: skip
    assert bench.main(argv) == 0
    return json.loads(out.read_text())


def test_report_has_every_field(report):
    assert set(report) == TOP_KEYS
    assert MACHINE_KEYS <= set(report["machine"])
    assert {"ternlab_isa", "llama_cpp_python", "llama_cpp_system_info"} <= set(report["machine"])
    assert report["engines"] == ["ternlab", "llama.cpp"] and report["peers"] == {}
    assert set(report["read_bandwidth_gbs"]) == {"1", "2"}
    peak = report["int8_mac_peak_gmacs"]
    assert peak is None or (set(peak) == {"1", "2"} and all(v > 0 for v in peak.values()))
    assert all(v > 0 for v in report["read_bandwidth_gbs"].values())
    # ternlab runs all three, llama.cpp tq2_0 and q4_0; each at 1 and 2 threads.
    got = {(r["engine"], r["type"], r["threads"]) for r in report["results"]}
    want = {(e, t, n) for e, t in [("ternlab", "tq2_0"), ("ternlab", "i2_s+q8_0"),
                                   ("ternlab", "q4_0"), ("llama.cpp", "tq2_0"),
                                   ("llama.cpp", "q4_0")]
            for n in (1, 2)}  # fmt: skip
    assert got == want
    for r in report["results"]:
        assert set(r) == ROW_KEYS
        for phase, n in (("pp", 16), ("tg", 8)):
            assert set(r[phase]) == PHASE_KEYS and r[phase]["n_tokens"] == n
            assert len(r[phase]["tokens_per_s_runs"]) == 2
            assert r[phase]["tokens_per_s"] == np.median(r[phase]["tokens_per_s_runs"]) > 0
        assert r["other_cpu_cores"] is None or r["other_cpu_cores"] >= 0


def test_derived_figures_follow_from_files_and_speeds(report):
    files = report["files"]
    assert set(files) == {"tq2_0", "i2_s+q8_0", "q4_0"}
    for f in files.values():
        assert f["file_bytes"] == Path(f["path"]).stat().st_size
    head_f16 = SMALL.vocab * SMALL.hidden * 2
    assert files["tq2_0"]["weight_bytes_per_token"] == {
        "linear": _linear_bytes(SMALL, 66),  # TQ2_0: 66 bytes per 256 values
        "head": head_f16,
        "total": _linear_bytes(SMALL, 66) + head_f16,
    }
    head_q8 = SMALL.vocab * SMALL.hidden // 32 * 34
    n_linear = SMALL.layers * len(random_gguf.linear_shapes(SMALL))
    i2s = files["i2_s+q8_0"]["weight_bytes_per_token"]  # 2 bits a value + 32 bytes a tensor
    assert i2s["head"] == head_q8 and i2s["linear"] == _linear_bytes(SMALL, 64) + 32 * n_linear
    bw = report["read_bandwidth_gbs"]
    # What ternlab streams: rows padded to 320 codes in 64 bytes (base3) or 256 in 64
    # (bits2); I2_S's per-tensor scale is not counted.
    for layout, block in (("base3", 320), ("bits2", 256)):
        held = files["tq2_0"]["engine_bytes_per_token"][layout]
        rows = [(o, -(-i // block) * 64) for o, i in random_gguf.linear_shapes(SMALL).values()]
        assert held["linear"] == SMALL.layers * sum(o * b for o, b in rows)
        assert held["head"] == head_f16
        assert files["i2_s+q8_0"]["engine_bytes_per_token"][layout]["linear"] == held["linear"]
    for r in report["results"]:
        total = files[r["type"]]["weight_bytes_per_token"]["total"]
        tps = r["tg"]["tokens_per_s"]
        assert r["decode_gbs"] == pytest.approx(total * tps / 1e9)
        assert r["decode_bw_fraction"] == pytest.approx(r["decode_gbs"] / bw[str(r["threads"])])
        if r["engine"] == "ternlab":
            assert (
                r["layout"] in ("bits2", "base3") and r["isa"] == report["machine"]["ternlab_isa"]
            )
            read = files[r["type"]]["engine_bytes_per_token"][r["layout"]]["total"]
        else:
            assert r["layout"] is None
            read = total
        assert r["decode_read_gbs"] == pytest.approx(read * tps / 1e9)
        frac = r["decode_read_gbs"] / bw[str(r["threads"])]
        assert r["decode_read_bw_fraction"] == pytest.approx(frac)
        # One probe before each rep's tg runs, shared by the engines; run i against probe i.
        probes = r["read_bandwidth_gbs_adjacent"]
        assert len(probes) == 2 and all(p > 0 for p in probes)
        twin = [
            x for x in report["results"] if (x["type"], x["threads"]) == (r["type"], r["threads"])
        ]
        assert all(x["read_bandwidth_gbs_adjacent"] == probes for x in twin)
        runs = [
            read * v / 1e9 / p for v, p in zip(r["tg"]["tokens_per_s_runs"], probes, strict=True)
        ]
        assert r["decode_read_bw_fraction_adjacent"] == pytest.approx(np.median(runs))


def test_ratios_and_goals(report):
    idx = {(r["engine"], r["type"], r["threads"]): r for r in report["results"]}
    same = {(x["type"], x["threads"]): x for x in report["ratios"]["same_type"]}
    assert set(same) == {(t, n) for t in ("tq2_0", "q4_0") for n in (1, 2)}
    vs = {(x["type"], x["threads"]): x for x in report["ratios"]["vs_llamacpp_tq2_0"]}
    assert set(vs) == {(t, n) for t in ("tq2_0", "i2_s+q8_0", "q4_0") for n in (1, 2)}
    for (t, n), x in vs.items():
        for p in ("pp", "tg"):
            mine = idx[("ternlab", t, n)][p]["tokens_per_s"]
            assert x[p] == pytest.approx(mine / idx[("llama.cpp", "tq2_0", n)][p]["tokens_per_s"])
    assert report["ratios"]["by_peer"]["llama.cpp"] == {
        "same_type": report["ratios"]["same_type"],
        "vs_tq2_0": report["ratios"]["vs_llamacpp_tq2_0"],
    }
    assert report["goals"]["baseline"] == "llama.cpp"
    for n in ("1", "2"):
        g = report["goals"]["per_threads"][n]
        assert set(g) == {"decode_bandwidth", "decode_bandwidth_adjacent",
                          "tg_vs_llamacpp_tq2_0", "pp_vs_llamacpp_tq2_0"}  # fmt: skip
        for key, field in (
            ("decode_bandwidth", "decode_read_bw_fraction"),
            ("decode_bandwidth_adjacent", "decode_read_bw_fraction_adjacent"),
        ):
            d = g[key]
            want = {t: idx[("ternlab", t, int(n))][field] for t in ("tq2_0", "i2_s+q8_0")}
            assert d["fraction_by_type"] == want
            assert d["met_by"] == sorted(t for t, v in want.items() if v >= 0.85)
            assert d["met_all"] == all(v >= 0.85 for v in want.values())
        tg = g["tg_vs_llamacpp_tq2_0"]
        assert tg["f16_head"]["type"] == "tq2_0"  # the only F16-head ternary type here
        assert tg["q8_0_head"]["type"] == "i2_s+q8_0" and tg["q6_k_head"] is None
        assert tg["q4_0_head"] is None
        assert tg["any_head"]["met"] == (tg["any_head"]["ratio"] >= 2.0)


def test_goals_judge_the_ternary_types_only():
    # The float types are baselines: a fast q8_0 or f16 file must not count as the
    # "fastest export" nor enter the bandwidth goal.
    def row(engine: str, typ: str, tg: float, frac: float = 0.5) -> dict:
        return {
            "engine": engine,
            "type": typ,
            "threads": 1,
            "decode_read_bw_fraction": frac,
            "pp": {"tokens_per_s": 10.0},
            "tg": {"tokens_per_s": tg},
        }

    rows = [row("ternlab", "tq2_0", 20.0), row("ternlab", "q8_0", 99.0, 0.9)]
    rows += [row("ternlab", "f16", 99.0, 0.9), row("llama.cpp", "tq2_0", 10.0)]
    g = bench.goals(rows, [1])["per_threads"]["1"]
    assert g["decode_bandwidth"]["fraction_by_type"] == {"tq2_0": 0.5}
    tg = g["tg_vs_llamacpp_tq2_0"]
    assert tg["f16_head"] == {"type": "tq2_0", "ratio": 2.0, "met": True}


def test_random_files_hold_the_same_model_in_each_type(tmp_path):
    paths = {
        t: random_gguf.ensure_gguf(SMALL, t, "f16", cache_dir=tmp_path, log=lambda _: None)
        for t in ("i2_s", "tq1_0", "f16")
    }
    readers = {t: TernaryGGUFReader(p) for t, p in paths.items()}
    name = "blk.1.ffn_down.weight"
    tensors = {t: next(x for x in r.tensors if x.name == name) for t, r in readers.items()}
    codes_i2s, scale = decode_ternary(tensors["i2_s"])
    codes_tq1, d = decode_ternary(tensors["tq1_0"])
    assert codes_i2s.shape == (SMALL.hidden, SMALL.ffn)
    np.testing.assert_array_equal(codes_i2s, codes_tq1)
    assert d == np.float32(np.float16(scale))
    zeros = (codes_i2s == 0).mean()
    assert 0.3 < zeros < 0.37  # about a third
    f16 = decode_float(tensors["f16"])
    np.testing.assert_array_equal(f16, (codes_i2s * scale).astype(np.float16).astype(np.float32))
    # A second call reuses the cached file.
    before = paths["f16"].stat().st_mtime_ns
    again = random_gguf.ensure_gguf(SMALL, "f16", "f16", cache_dir=tmp_path, log=pytest.fail)
    assert again == paths["f16"] and again.stat().st_mtime_ns == before


def test_random_file_refuses_rows_the_type_cannot_pack(tmp_path):
    odd = random_gguf.Shape("odd", 256, 320, 1, 4, 2, 512)
    with pytest.raises(ValueError, match="ffn_down: rows of 320 values; tq2_0 needs a multiple"):
        random_gguf.write_random_gguf(tmp_path / "x.gguf", odd, "tq2_0")
    assert list(tmp_path.iterdir()) == []


def test_int8_mac_peak():
    from ternlab.inference import _kernels

    if "avx2" not in _kernels.available_isas():
        with pytest.raises(RuntimeError, match="no AVX2"):
            _kernels.int8_mac_peak(1, 0.01)
        return
    one = _kernels.int8_mac_peak(1, 0.05)
    assert 1.0 < one < 10_000.0  # G multiply-adds a second: a core does tens to hundreds
    assert _kernels.int8_mac_peak(2, 0.05) > 0.0
    for args, match in (((0, 0.1), "threads"), ((1, 0.0), "seconds"), ((1, 61.0), "seconds")):
        with pytest.raises(ValueError, match=match):
            _kernels.int8_mac_peak(*args)


def test_read_bandwidth_simd_and_scalar():
    from ternlab.inference import _kernels

    for simd in (True, False):
        for threads in (1, 2):
            assert _kernels.read_bandwidth(8 << 20, threads, 2, simd=simd) > 0.1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((100, 1, 1), "`nbytes` = 100 is too small"),
        ((1 << 20, 0, 1), "`threads` must be in"),
        ((1 << 20, 1, 0), "`repetitions` must be >= 1"),
    ],
)
def test_read_bandwidth_rejects_bad_arguments(args, match):
    from ternlab.inference import _kernels

    with pytest.raises(ValueError, match=match):
        _kernels.read_bandwidth(*args)


# --- peers: a llama.cpp-family llama-bench binary ---------------------------------------


def test_peer_must_be_an_executable(tmp_path):
    not_exec = tmp_path / "llama-bench"
    not_exec.write_text("")
    for spec in (str(tmp_path / "missing"), f"fork={not_exec}"):
        with pytest.raises(ValueError, match="is not an executable file"):
            peer.parse_peer(spec)
    not_exec.chmod(0o755)
    assert peer.parse_peer(f"bitnet.cpp={not_exec}") == ("bitnet.cpp", not_exec)
    with pytest.raises(ValueError, match="the name 'llama.cpp' is taken"):
        peer.parse_peer(f"llama.cpp={not_exec}")
    with pytest.raises(SystemExit, match="--baseline 'fork' is not measured"):
        bench.main(["--baseline", "fork", "--types", "tq2_0"])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("build: 1234 (abc)", "printed no JSON"),
        ('{"n_prompt": 8}', "not a list of tests"),
        ('[{"n_prompt": 0, "n_gen": 8, "avg_ns": 5}]', "no test with n_prompt=8, n_gen=0"),
        ('[{"n_prompt": 8, "n_gen": 0}]', "has no avg_ns"),
    ],
)
def test_peer_output_that_is_not_llama_bench_json_is_an_error(text, match):
    with pytest.raises(peer.PeerError, match=match):
        peer.parse_llama_bench_json(text, 8, 0)


@pytest.mark.slow
def test_peer_llama_bench_on_path(tmp_path):
    """A real llama-bench (any llama.cpp build on PATH) timed beside ternlab as a peer."""
    binary = shutil.which("llama-bench")
    if binary is None:
        pytest.skip(
            "no llama-bench on PATH (build one from llama.cpp: see docs/engine-benchmarks.md)"
        )
    out = tmp_path / "r.json"
    argv = ["--shape", "small", "--types", "tq2_0", "--threads", "1", "--reps", "2",
            "--n-prompt", "16", "--n-gen", "8", "--bandwidth-mib", "64", "--skip-llamacpp",
            "--peer", f"lb={binary}", "--baseline", "lb", "--cache-dir", str(tmp_path / "c"),
            "-o", str(out), "--no-table"]  # fmt: skip
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["engines"] == ["ternlab", "lb"] and report["goals"]["baseline"] == "lb"
    row = next(r for r in report["results"] if r["engine"] == "lb")
    assert row["tg"]["tokens_per_s"] > 0 and len(row["pp"]["tokens_per_s_runs"]) == 2
    (same,) = report["ratios"]["by_peer"]["lb"]["same_type"]
    mine = next(r for r in report["results"] if r["engine"] == "ternlab")
    assert same["tg"] == pytest.approx(mine["tg"]["tokens_per_s"] / row["tg"]["tokens_per_s"])
