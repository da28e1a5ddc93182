"""A port of bitnet.cpp's 2B4T GGUF pipeline (``utils/convert-helper-bitnet.py``), for tests.

bitnet.cpp cannot be imported (its converter needs the repo's vendored gguf-py and a
compiled ``llama-quantize``), so its three steps are ported here, step for step:

1. ``utils/preprocess-huggingface-bitnet.py``: ``quant_weight_fp16`` replaces every
   ``*_proj.weight`` by its absmean-ternarized value ``round(w*s).clamp(-1,1) / s``.
2. ``utils/convert-ms-to-gguf-bitnet.py --vocab-type bpe --outtype f32``: architecture
   ``bitnet-b1.58`` (``MODEL_ARCH.BITNET_25``), the hyperparameters of
   ``OutputFile.add_meta_arch`` (``add_bos_token`` true), the vocabulary of gguf-py's
   ``BpeVocab`` and ``SpecialVocab(load_merges=True)`` (the same classes, which it vendors),
   its hard-coded chat template — and no ``tokenizer.ggml.pre`` (it never writes one).
3. ``llama-quantize ... I2_S`` (``--token-embedding-type f16``, as ``setup_env.py``): the
   projections become I2_S by ``quantize_i2_s`` of ``src/ggml-bitnet-mad.cpp`` (x86,
   ``ACT_PARALLEL``): scale = max |w|, field 0/1/2, 128-value blocks, scale after the codes;
   ``general.file_type`` 40 (``LLAMA_FTYPE_MOSTLY_I2_S``).
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors.torch import load_file

ARCH = "bitnet-b1.58"  # gguf.MODEL_ARCH_NAMES[MODEL_ARCH.BITNET_25] in bitnet.cpp's gguf-py
I2_S, QK_I2_S, FTYPE_I2_S = 36, 128, 40
CHAT_TEMPLATE = (  # convert-ms-to-gguf-bitnet.py, OutputFile.write_all, for 'bitnet' archs
    "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ 'Human: ' + message['content'] + "
    "'\\n\\nBITNETAssistant: ' + eos_token }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)
# bitnet.cpp's gguf-py TensorNameMap for BITNET_25 (HF BitNetForCausalLM names).
_LAYER = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "self_attn.attn_sub_norm": "attn_sub_norm", "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    "mlp.ffn_sub_norm": "ffn_sub_norm",
}  # fmt: skip
_KEYWORDS = ("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight",
             "gate_proj.weight", "up_proj.weight", "down_proj.weight")  # fmt: skip


def quant_weight_fp16(weight: torch.Tensor) -> torch.Tensor:
    """preprocess-huggingface-bitnet.py."""
    weight = weight.to(torch.float)
    s = 1.0 / weight.abs().mean().clamp_(min=1e-5)
    return (weight * s).round().clamp(-1, 1) / s


def quantize_i2_s(src: np.ndarray) -> np.ndarray:
    """ggml-bitnet-mad.cpp ``quantize_i2_s`` (ACT_PARALLEL): float32 values -> I2_S bytes."""
    src = src.reshape(-1).astype(np.float32)
    n = src.size
    i2_scale = np.max(np.abs(src.astype(np.float64)))  # double max over fabs
    q8 = np.where(src.astype(np.float64) * i2_scale > 0, 2, 0).astype(np.uint8)
    q8[np.abs(src.astype(np.float64)) < 1e-6] = 1
    dst = np.zeros(n // 4 + 32, dtype=np.uint8)
    for j in range(QK_I2_S):  # for i (blocks) vectorized; j as in the C loop
        group_idx, group_pos = j // 32, j % 32
        temp = (q8[j::QK_I2_S] << (6 - 2 * group_idx)).astype(np.uint8)
        dst[group_pos : n // 4 : 32] |= temp
    dst[n // 4 : n // 4 + 4] = np.array([i2_scale], dtype="<f4").view(np.uint8)
    return dst


def gguf_name(hf: str) -> str:
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    _, _, bid, rest = hf.split(".", 3)
    return f"blk.{bid}.{_LAYER[rest.removesuffix('.weight')]}.weight"


def convert(model_dir: Path, out: Path) -> Path:
    """``convert-helper-bitnet.py model_dir`` -> the I2_S GGUF ``out``."""
    config = json.loads((model_dir / "config.json").read_text())
    state = load_file(model_dir / "model.safetensors")
    state = {  # step 1
        k: quant_weight_fp16(v) if any(w in k for w in _KEYWORDS) else v for k, v in state.items()
    }
    w = gguf.GGUFWriter(out, ARCH)
    n_head = config["num_attention_heads"]
    w.add_name("bitnet2b_2501" if config["max_position_embeddings"] == 4096 else "bitnet")
    w.add_vocab_size(config["vocab_size"])
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_block_count(config["num_hidden_layers"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_rope_dimension_count(config["hidden_size"] // n_head)
    w.add_head_count(n_head)
    w.add_head_count_kv(config.get("num_key_value_heads", n_head))
    w.add_add_bos_token(True)
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_rope_freq_base(config["rope_theta"])
    w.add_file_type(FTYPE_I2_S)  # llama-quantize rewrites the f32 file's 0
    vocab = gguf.vocab.BpeVocab(model_dir)  # add_meta_vocab
    tokens, scores, toktypes = zip(*vocab.all_tokens(), strict=True)
    w.add_tokenizer_model(vocab.tokenizer_model)
    w.add_token_list(list(tokens))
    w.add_token_scores(list(scores))
    w.add_token_types(list(toktypes))
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab.vocab_size)
    special.chat_template = CHAT_TEMPLATE
    special.add_to_gguf(w, quiet=True)
    for name, t in state.items():  # step 3: llama-quantize
        data = t.float().numpy()
        if any(k in name for k in _KEYWORDS):
            w.add_tensor(gguf_name(name), quantize_i2_s(data).view(np.int8),
                         raw_shape=data.shape, raw_dtype=I2_S)  # fmt: skip
        elif name == "model.embed_tokens.weight":
            w.add_tensor(gguf_name(name), data.astype(np.float16))
        else:
            w.add_tensor(gguf_name(name), data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
