"""``ternlab import FILE.gguf``: a GGUF (I2_S, TQ1_0, TQ2_0, F16, Q8_0) -> a trainable checkpoint.

Ternary tensors become latent weights that quantize back to the file's codes and
scale (:mod:`ternlab.export.latent`); the rest are dequantized to float32.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from tokenizers import processors

from ternlab.export import codec, names
from ternlab.export.ckpt_writer import Imported, trainable_config, write_checkpoint
from ternlab.export.errors import ExportError
from ternlab.export.latent import latent_from_ternary
from ternlab.export.metadata import K_CONFIG, K_HF_JSON, K_SCALES, K_TOK_CONFIG
from ternlab.export.progress import track
from ternlab.export.reader import arch_key, architecture, get, open_gguf
from ternlab.inference.tokenizer import TokenizerError, tokenizer_from_metadata

ARCHS = ("bitnet", "bitnet-b1.58")


def read_gguf(path: str | Path, progress: bool = False) -> Imported:
    """Read a BitNet GGUF into an :class:`Imported` model (no file written)."""
    reader = open_gguf(path)
    arch = architecture(reader)
    if arch not in ARCHS:
        raise ExportError(
            f"{path}: general.architecture={arch!r}; ternlab imports {', '.join(ARCHS)} GGUFs"
        )
    tensors = reader.tensors
    ternary = any(codec.is_ternary_type(t) for t in tensors)
    exact = _exact_scales(reader)
    state: dict[str, torch.Tensor] = {}
    moved: list[str] = []
    for t in track(tensors, len(tensors), "importing", progress):
        hf = names.to_hf(t.name)
        if codec.is_ternary_type(t):
            codes, scale = codec.decode_ternary(t)
            scale = _checkpoint_scale(t.name, scale, exact)
            exact_scale = int(t.tensor_type) == codec.I2S_TYPE_ID or t.name in exact
            w, got = latent_from_ternary(
                torch.from_numpy(codes), float(scale), t.name, nearest=not exact_scale
            )
            if np.float32(got) != scale:
                moved.append(f"{t.name}: {float(scale)!r} -> {got!r}")
            state[hf] = w
        else:
            state[hf] = torch.from_numpy(codec.decode_float(t).copy())
    config = _config(reader, path, arch, "output.weight" not in {t.name for t in tensors})
    files, notes = _tokenizer(reader, path)
    return Imported(trainable_config(config, ternary), state, files, moved, notes)


def _exact_scales(reader) -> dict[str, float]:
    """The float32 scales ternlab's exporter recorded (TQ blocks round them to fp16)."""
    raw = get(reader, K_SCALES, None)
    return {} if raw is None else {k: float(v) for k, v in json.loads(raw).items()}


def _checkpoint_scale(name: str, scale: np.float32, exact: dict[str, float]) -> np.float32:
    """The recorded scale, if it is the one the file's blocks were rounded from."""
    if name not in exact:
        return scale
    recorded = np.float32(exact[name])
    if recorded != scale and np.float32(np.float16(recorded)) != scale:
        raise ExportError(
            f"tensor {name}: the recorded scale {float(recorded)!r} does not match the file's "
            f"{float(scale)!r}; the file was edited after export"
        )
    return recorded


def import_gguf(path: str | Path, out: str | Path, progress: bool = False) -> Imported:
    """Import ``path`` and write the checkpoint folder ``out``."""
    imported = read_gguf(path, progress)
    write_checkpoint(out, imported)
    return imported


def _config(reader, path, arch: str, tied: bool) -> dict:
    """ternlab's own ``config.json`` if the file carries it, else one from the GGUF keys."""
    own = get(reader, K_CONFIG, None)
    if own is not None:
        return json.loads(own)
    hidden = int(arch_key(reader, "embedding_length"))
    return {
        "vocab_size": len(get(reader, "tokenizer.ggml.tokens")),
        "hidden_size": hidden,
        "intermediate_size": int(arch_key(reader, "feed_forward_length")),
        "num_hidden_layers": int(arch_key(reader, "block_count")),
        "num_attention_heads": int(arch_key(reader, "attention.head_count")),
        "num_key_value_heads": int(arch_key(reader, "attention.head_count_kv")),
        "hidden_act": "silu" if arch == "bitnet" else "relu2",
        "max_position_embeddings": int(arch_key(reader, "context_length")),
        "rms_norm_eps": float(arch_key(reader, "attention.layer_norm_rms_epsilon")),
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": float(arch_key(reader, "rope.freq_base", 10000.0)),
        },
        "tie_word_embeddings": tied,
        "bos_token_id": get(reader, "tokenizer.ggml.bos_token_id", None),
        "eos_token_id": get(reader, "tokenizer.ggml.eos_token_id", None),
        "pad_token_id": get(reader, "tokenizer.ggml.padding_token_id", None),
    }


def _tokenizer(reader, path) -> tuple[dict[str, str], list[str]]:
    """tokenizer.json (and tokenizer_config.json): as embedded, else rebuilt from the ggml arrays.

    bitnet.cpp's and llama.cpp's converters store only ``tokenizer.ggml.*``; the engine
    rebuilds the same ``tokenizers`` BPE from them (:mod:`ternlab.inference.tokenizer`).
    """
    hf_json = get(reader, K_HF_JSON, None)
    if hf_json is not None:
        files = {"tokenizer.json": hf_json}
        tcfg = get(reader, K_TOK_CONFIG, None)
        if tcfg is not None:
            files["tokenizer_config.json"] = tcfg
        return files, []
    meta = {k: get(reader, k) for k in reader.fields if k.startswith("tokenizer.")}
    try:
        with warnings.catch_warnings():  # the inference is reported as a note instead
            warnings.simplefilter("ignore")
            text = tokenizer_from_metadata(meta, str(path))
    except TokenizerError as e:
        raise ExportError(str(e)) from e
    return ggml_tokenizer_files(text, meta, reader), [text.note] if text.note else []


def ggml_tokenizer_files(text, meta: dict, reader) -> dict[str, str]:
    """``tokenizer.json`` + ``tokenizer_config.json`` of a tokenizer rebuilt from ggml arrays."""
    tok = text.tokenizer
    bos = text.token_text(text.bos_id) or None
    if text.add_bos and bos:  # transformers then adds BOS itself, as Llama 3's tokenizer.json
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, text.bos_id)]
        )
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": text.token_text(text.eos_id) or None,
        "model_max_length": int(arch_key(reader, "context_length", 2048)),
        "clean_up_tokenization_spaces": False,
    }
    if isinstance(meta.get("tokenizer.chat_template"), str):
        config["chat_template"] = meta["tokenizer.chat_template"]
    return {"tokenizer.json": tok.to_str(), "tokenizer_config.json": json.dumps(config, indent=2)}
