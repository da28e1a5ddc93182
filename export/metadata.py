"""GGUF metadata: hyperparameters, RoPE, the tokenizer and ternlab's provenance keys."""

from __future__ import annotations

import json

from gguf import GGUFWriter, LlamaFileType, TokenType

from ternlab import __version__
from ternlab.bitlinear.spec import SPEC_VERSION
from ternlab.export.arch import Plan
from ternlab.export.i2s import I2S_FILE_TYPE
from ternlab.export.source import Checkpoint

FILE_TYPES = {
    "tq1_0": int(LlamaFileType.MOSTLY_TQ1_0),
    "tq2_0": int(LlamaFileType.MOSTLY_TQ2_0),
    "i2_s": I2S_FILE_TYPE,
    "f16": int(LlamaFileType.MOSTLY_F16),
    "q8_0": int(LlamaFileType.MOSTLY_Q8_0),
}
#: ternlab's own keys.
K_VERSION = "ternlab.version"
K_SPEC = "ternlab.quant_spec_version"
K_TYPE = "ternlab.tensor_type"
K_CONFIG = "ternlab.config_json"
K_SCALES = "ternlab.weight_scales_json"  # {GGUF tensor name: float32 scale}
K_TOK_CONFIG = "ternlab.tokenizer_config_json"
K_HF_JSON = "tokenizer.huggingface.json"  # gguf-py's Keys.Tokenizer.HF_JSON


def write_metadata(w: GGUFWriter, ckpt: Checkpoint, plan: Plan) -> None:
    """Every key of the export: hyperparameters first, then tokenizer and provenance."""
    c = ckpt.config
    n_head = c["num_attention_heads"]
    w.add_name(ckpt.path.name)
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_block_count(c["num_hidden_layers"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(c.get("num_key_value_heads") or n_head)
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    w.add_rope_freq_base(rope_theta(c))
    w.add_rope_dimension_count(c["hidden_size"] // n_head)
    w.add_vocab_size(c["vocab_size"])
    w.add_file_type(FILE_TYPES[plan.qtype])
    write_tokenizer(w, ckpt)
    w.add_string(K_VERSION, __version__)
    w.add_string(K_SPEC, SPEC_VERSION)
    w.add_string(K_TYPE, plan.qtype)
    w.add_string(K_CONFIG, json.dumps(c, sort_keys=True))


def rope_theta(config: dict) -> float:
    """RoPE base from transformers 5 ``rope_parameters`` or the older ``rope_theta``."""
    params = config.get("rope_parameters") or {}
    return float(params.get("rope_theta", config.get("rope_theta", 10000.0)))


def pre_tokenizer_name(tok: dict) -> str:
    """llama.cpp's ``tokenizer.ggml.pre`` for a byte-level BPE tokenizer.json."""
    pre = tok.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"  # the GPT-2 split regex, which ternlab's trained BPE uses
    if "(?i:'s|'t|'re|'ve|'m|'ll|'d)" in json.dumps(pre):
        return "llama-bpe"  # the Llama 3 split (the 2b preset's tokenizer)
    return "default"


def write_tokenizer(w: GGUFWriter, ckpt: Checkpoint) -> None:
    """The BPE vocabulary, merges, token types, special ids and chat template."""
    tok = ckpt.tokenizer_json()
    tcfg = ckpt.tokenizer_config()
    model = tok["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    special = {a["content"]: a["id"] for a in tok.get("added_tokens", []) if a.get("special")}
    user = {a["content"]: a["id"] for a in tok.get("added_tokens", []) if not a.get("special")}
    vocab.update(special | user)
    n = ckpt.config["vocab_size"]
    tokens = [f"[PAD{i}]" for i in range(n)]
    types = [int(TokenType.UNUSED)] * n
    for text, i in vocab.items():
        if i < n:
            tokens[i] = text
            types[i] = int(
                TokenType.CONTROL
                if text in special
                else TokenType.USER_DEFINED
                if text in user
                else TokenType.NORMAL
            )
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre_tokenizer_name(tok))
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    _special_ids(w, ckpt.config, tcfg)
    if tcfg.get("chat_template"):
        w.add_chat_template(tcfg["chat_template"])
    # The files verbatim, so that import gives them back byte for byte.
    w.add_string(K_HF_JSON, (ckpt.path / "tokenizer.json").read_text())
    if (ckpt.path / "tokenizer_config.json").is_file():
        w.add_string(K_TOK_CONFIG, (ckpt.path / "tokenizer_config.json").read_text())


def _special_ids(w: GGUFWriter, config: dict, tcfg: dict) -> None:
    if config.get("bos_token_id") is not None:
        w.add_bos_token_id(config["bos_token_id"])
    eos = config.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0]
    if eos is not None:
        w.add_eos_token_id(eos)
    if config.get("pad_token_id") is not None:
        w.add_pad_token_id(config["pad_token_id"])
    # ternlab's data pipeline starts every training document with BOS (train/data.py), so a
    # runtime must put it before a prompt too, whatever tokenizer_config.json says.
    w.add_add_bos_token(config.get("bos_token_id") is not None or bool(tcfg.get("add_bos_token")))
    w.add_add_eos_token(bool(tcfg.get("add_eos_token", False)))
