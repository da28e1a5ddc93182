"""``--verify``: read the written GGUF back and check it against the checkpoint.

Ternary tensors: the codes equal the spec's codes exactly, the stored scale is
the checkpoint's float32 scale (I2_S) or its fp16 rounding (TQ1_0/TQ2_0), and
dequantizing with gguf-py gives exactly ``codes * stored scale``. Other tensors
dequantize to exactly what their type makes of the checkpoint's values. The
metadata (hyperparameters, tokenizer, provenance) reads back as written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from gguf import quants

from ternlab.bitlinear.spec import SPEC_VERSION
from ternlab.export import codec, names
from ternlab.export.arch import Plan, gguf_rows
from ternlab.export.errors import ExportError
from ternlab.export.metadata import FILE_TYPES, K_CONFIG, K_SPEC, K_TYPE, rope_theta
from ternlab.export.progress import track
from ternlab.export.reader import arch_key, architecture, get, open_gguf
from ternlab.export.source import Checkpoint


def verify_gguf(path: str | Path, ckpt: Checkpoint, plan: Plan, progress: bool = False) -> None:
    """Raise :class:`ExportError` naming the first difference between ``path`` and ``ckpt``."""
    from ternlab.export.gguf_export import export_names, tensor_type, ternary_of

    reader = open_gguf(path)
    _check_metadata(reader, ckpt, plan)
    tensors = {t.name: t for t in reader.tensors}
    expected = export_names(ckpt)
    if set(tensors) != {names.to_gguf(n) for n in expected}:
        raise ExportError(f"{path}: tensor names differ from the checkpoint's")
    for name in track(expected, len(expected), "verifying", progress):
        t = tensors[names.to_gguf(name)]
        qtype = tensor_type(ckpt, plan, name)
        if qtype in codec.TERNARY_TYPES:
            codes, scale = ternary_of(ckpt, name)
            _check_ternary(t, gguf_rows(ckpt, plan, name, codes), scale, qtype)
        else:
            got = codec.decode_float(t)
            want = gguf_rows(ckpt, plan, name, ckpt.state[name].numpy())
            if not np.array_equal(got, codec.expected_float(want, qtype)):
                raise ExportError(f"verify: GGUF tensor {t.name} ({qtype}) differs from {name}")


def _check_ternary(t, codes: np.ndarray, scale: np.float32, qtype: str) -> None:
    got_codes, got_scale = codec.decode_ternary(t)
    want_scale = scale if qtype == "i2_s" else codec.fp16_scale(scale)
    if not np.array_equal(got_codes, codes):
        raise ExportError(f"verify: GGUF tensor {t.name}: ternary codes differ from the checkpoint")
    if (codes != 0).any() and got_scale != want_scale:
        raise ExportError(f"verify: GGUF tensor {t.name}: scale {got_scale} != {want_scale}")
    if qtype != "i2_s":  # gguf-py's own dequantizer must agree with codes * scale
        deq = quants.dequantize(t.data, codec.TERNARY_TYPES[qtype]).reshape(codes.shape)
        if not np.array_equal(deq, codes.astype(np.float32) * want_scale):
            raise ExportError(f"verify: GGUF tensor {t.name}: dequantized values differ")


def _check_metadata(reader, ckpt: Checkpoint, plan: Plan) -> None:
    c = ckpt.config
    eps = c["rms_norm_eps"]
    want = {
        "block_count": c["num_hidden_layers"],
        "embedding_length": c["hidden_size"],
        "feed_forward_length": c["intermediate_size"],
        "attention.head_count": c["num_attention_heads"],
        "context_length": c["max_position_embeddings"],
        "vocab_size": c["vocab_size"],
    }
    checks = [(k, arch_key(reader, k), v) for k, v in want.items()]
    checks += [
        ("general.architecture", architecture(reader), plan.arch),
        ("general.file_type", get(reader, "general.file_type"), FILE_TYPES[plan.qtype]),
        (K_TYPE, get(reader, K_TYPE), plan.qtype),
        (K_SPEC, get(reader, K_SPEC), SPEC_VERSION),
        (K_CONFIG, json.loads(get(reader, K_CONFIG)), c),
        ("rope.freq_base", arch_key(reader, "rope.freq_base"), np.float32(rope_theta(c))),
        ("rms eps", arch_key(reader, "attention.layer_norm_rms_epsilon"), np.float32(eps)),
        ("token count", len(get(reader, "tokenizer.ggml.tokens")), c["vocab_size"]),
    ]
    for key, got, exp in checks:
        if got != exp:
            raise ExportError(f"verify: GGUF key {key} is {got!r}, expected {exp!r}")
