"""Tiny replicas of published ternary models, built at test time with the publishers' own code.

* :func:`llama3_tokenizer` — a small byte-level BPE with Llama 3's pre-tokenizer (its split
  regex, ByteLevel without its own regex, ``ignore_merges``) and Llama 3's special tokens,
  trained with the ``tokenizers`` library.
* :func:`bitnet_2b4t_packed` — microsoft/bitnet-b1.58-2B-4T's folder layout: its
  ``config.json`` keys (tiny shapes), bfloat16 tensors, ternary projections packed with
  transformers' own ``pack_weights`` and ``weight_scale`` as ``AutoBitLinear`` applies it
  (multiplied). Codes come from the absmean quantizer of the 2B4T training code
  (transformers' ``WeightQuant``; bitnet.cpp's ``preprocess-huggingface-bitnet.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                   "<|reserved_special_token_1|>", "<|start_header_id|>", "<|end_header_id|>",
                   "<|reserved_special_token_2|>", "<|eot_id|>"]  # fmt: skip
#: Mixed text the tokenizer tests encode: code, digits, non-Latin scripts, emoji, spacing.
MIXED_TEXT = (
    "def f(x):\n    return x**2 + 12345  # square\n\n"
    "Price: $1,234.56 on 2024-05-17; 3.14159 ≈ π.\n"
    "Привет, мир! 你好，世界。 こんにちは 😀 naïve café\t  tabs   and  spaces\n"
    "I'm sure they'll say it's 'DONE' we've"
)
_CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(i * 123)\n",
    "Question: 12 + 30 = ? Answer: 42. The year 2024 had 366 days.",
    "Привет мир, как дела? Всё хорошо. 你好世界，今天天气很好。 日本語のテキスト。",
    "I'm here, you're there, it's fine, we've seen they'll go, he'd say.",
]


def llama3_tokenizer(out: Path, vocab_size: int = 600):
    """Train a tiny Llama-3-style BPE and save it (``tokenizer.json`` + config) in ``out``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok.add_special_tokens(LLAMA3_SPECIALS)  # after the BPE ids, as Llama 3 (128000+)
    bos = LLAMA3_SPECIALS[0]
    tok.post_processor = processors.TemplateProcessing(  # Llama 3 adds BOS this way
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"
    )
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return fast


def bitnet_2b4t_config(vocab_size: int, bos: int, eos: int) -> dict:
    """microsoft/bitnet-b1.58-2B-4T's ``config.json``, shapes shrunk (I2_S needs rows of 128)."""
    return {
        "architectures": ["BitNetForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "hidden_act": "relu2",
        "hidden_size": 128,
        "initializer_range": 0.02,
        "intermediate_size": 256,
        "max_position_embeddings": 4096,
        "model_type": "bitnet",
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-05,
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": vocab_size,
        "quantization_config": {
            "quant_method": "bitnet",
            "linear_class": "autobitlinear",
            "quantization_mode": "offline",
        },
    }


def _latent_state(config: dict, seed: int) -> dict[str, torch.Tensor]:
    """Random float32 master weights of the 2B4T shape (tied: no ``lm_head``)."""
    from transformers import BitNetConfig, BitNetForCausalLM

    plain = {k: v for k, v in config.items() if k != "quantization_config"}
    torch.manual_seed(seed)
    model = BitNetForCausalLM(BitNetConfig(**plain)).float()
    state = {}
    for name, w in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied: 2B4T stores only the embedding
        if name.endswith("_proj.weight"):
            w = w * torch.empty(w.shape[0], 1).uniform_(0.5, 2.0)  # uneven rows
        elif name.endswith("embed_tokens.weight"):
            w = 0.2 * torch.randn_like(w)  # logits of a few units, like a trained model's
        elif name.endswith("norm.weight"):
            w = 1.0 + 0.1 * torch.randn_like(w)
        state[name] = w.float()
    return state


def bitnet_2b4t_packed(out: Path, seed: int = 0) -> Path:
    """A packed 2B4T-layout folder with random weights (and the Llama-3-style tokenizer)."""
    from transformers.integrations.bitnet import pack_weights

    tok = llama3_tokenizer(out)
    config = bitnet_2b4t_config(len(tok), tok.bos_token_id, tok.eos_token_id)
    state = {}
    for name, w in _latent_state(config, seed).items():
        if name.endswith("_proj.weight"):
            scale = w.abs().mean().clamp(min=1e-5)
            codes = (w / scale).round().clamp(-1, 1)
            state[name] = pack_weights(codes.clone())
            state[name + "_scale"] = scale.reshape(1).to(torch.bfloat16)
        else:
            state[name] = w.to(torch.bfloat16)
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def bitnet_2b4t_bf16(out: Path, seed: int = 0) -> Path:
    """microsoft/bitnet-b1.58-2B-4T-bf16's layout: bfloat16 master weights, no packing."""
    tok = llama3_tokenizer(out)
    config = bitnet_2b4t_config(len(tok), tok.bos_token_id, tok.eos_token_id)
    del config["quantization_config"]
    state = {k: v.to(torch.bfloat16) for k, v in _latent_state(config, seed).items()}
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def llama2_tokenizer(out: Path, vocab_size: int = 700):
    """A tiny Llama 1/2 style tokenizer (what transformers converts ``tokenizer.model`` into):
    BPE with byte fallback (``<0x00>``…``<0xFF>``), ``▁`` for spaces, ``<unk> <s> </s>`` at
    ids 0-2, BOS added; 1bitLLM's ``<pad>`` appended after the BPE ids (its id 32000)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    norm = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    scratch = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    scratch.normalizer = norm
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 256, special_tokens=specials, limit_alphabet=120,
        show_progress=False,
    )  # fmt: skip
    scratch.train_from_iterator(_CORPUS * 4, trainer=trainer)
    learned = json.loads(scratch.to_str())["model"]
    vocab = {t: i for i, t in enumerate(specials + [f"<0x{b:02X}>" for b in range(256)])}
    for t, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(t, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = norm
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
         decoders.Strip(" ", 1, 0)]
    )  # fmt: skip
    tok.add_special_tokens(specials + ["<pad>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>",
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return fast


def onebitllm_config(vocab_size: int, pad: int) -> dict:
    """1bitLLM/bitnet_b1_58-large's ``config.json`` (its keys and values), shapes shrunk."""
    return {
        "architectures": ["BitnetForCausalLM"],
        "attention_bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 128,
        "initializer_range": 0.02,
        "input_bits": 8,
        "intermediate_size": 256,
        "max_position_embeddings": 2048,
        "model_type": "llama",
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "pad_token_id": pad,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "float16",
        "use_cache": True,
        "vocab_size": vocab_size,
        "weight_bits": 1,
    }


def onebitllm_latent(out: Path, seed: int = 0) -> Path:
    """A 1bitLLM folder: float16 latent weights under 1bitLLM's names, quantized at run time."""
    tok = llama2_tokenizer(out)
    config = onebitllm_config(len(tok), tok.pad_token_id)
    bitnet = {**config, "model_type": "bitnet"}
    for k in ("architectures", "weight_bits", "input_bits", "pretraining_tp"):
        del bitnet[k]
    state = {}
    for name, w in _latent_state(bitnet, seed).items():
        name = name.replace("self_attn.attn_sub_norm", "self_attn.inner_attn_ln")
        name = name.replace("mlp.ffn_sub_norm", "mlp.ffn_layernorm")
        state[name] = w.to(torch.float16)
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def llama_ternary_config(vocab_size: int, bos: int, eos: int, tied: bool) -> dict:
    """A Llama ``config.json`` as HF1BitLLM/Llama3-8B-1.58 and Falcon-E publish (keys of
    ``LlamaConfig``, bfloat16), shapes shrunk; the caller adds ``quantization_config``."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "hidden_act": "silu",
        "hidden_size": 128,
        "initializer_range": 0.02,
        "intermediate_size": 256,
        "max_position_embeddings": 4096,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 500000.0,
        "tie_word_embeddings": tied,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": vocab_size,
    }


def _llama_latent_state(config: dict, seed: int) -> dict[str, torch.Tensor]:
    from transformers import LlamaConfig, LlamaForCausalLM

    plain = {k: v for k, v in config.items() if k != "quantization_config"}
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**plain)).float()
    state = {}
    for name, w in model.state_dict().items():
        if name == "lm_head.weight" and config["tie_word_embeddings"]:
            continue
        if name.endswith("_proj.weight"):
            w = w * torch.empty(w.shape[0], 1).uniform_(0.5, 2.0)
        elif name.endswith(("embed_tokens.weight", "lm_head.weight")):
            w = 0.2 * torch.randn_like(w)
        elif name.endswith("norm.weight"):
            w = 1.0 + 0.1 * torch.randn_like(w)
        state[name] = w.float()
    return state


def hf1bitllm_packed(out: Path, seed: int = 0) -> Path:
    """HF1BitLLM/Llama3-8B-1.58-100B-tokens' layout: a Llama (no sub-norms, untied head),
    ``quantization_config`` without ``linear_class`` (transformers' ``BitLinear``: it divides
    by ``weight_scale``, so that holds ``1 / mean|W|``), transformers' ``pack_weights``."""
    from transformers.integrations.bitnet import pack_weights

    tok = llama3_tokenizer(out)
    config = llama_ternary_config(len(tok), tok.bos_token_id, tok.eos_token_id, tied=False)
    config["quantization_config"] = {"modules_to_not_convert": None, "quant_method": "bitnet"}
    state = {}
    for name, w in _llama_latent_state(config, seed).items():
        if name.endswith("_proj.weight"):
            s_w = 1.0 / w.abs().mean().clamp(min=1e-5)
            state[name] = pack_weights((w * s_w).round().clamp(-1, 1))
            state[name + "_scale"] = s_w.reshape(1).to(torch.bfloat16)
        else:
            state[name] = w.to(torch.bfloat16)
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def falcon_e_prequantized(out: Path, seed: int = 1) -> Path:
    """tiiuae/Falcon-E's ``prequantized`` revision: a plain bfloat16 Llama folder whose
    latent weights onebitllms' ``BitNetLinear`` quantizes online (fine-tuning starts here)."""
    tok = llama3_tokenizer(out)
    config = llama_ternary_config(len(tok), tok.bos_token_id, tok.eos_token_id, tied=True)
    state = {k: v.to(torch.bfloat16) for k, v in _llama_latent_state(config, seed).items()}
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def falcon_e_packed(prequantized: Path, out: Path) -> Path:
    """Falcon-E's main revision, made as onebitllms 0.0.4's ``quantize_to_1bit`` makes it
    (transcribed: its ``_weight_quant`` on the bfloat16 weights, transformers' ``pack_weights``,
    ``weight_scale = 1 / mean|W|`` in bfloat16, ``quantization_config = {modules_to_not_convert:
    [lm_head], quant_method: bitnet}``, ``is_bitnet_config``)."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer
    from transformers.integrations import pack_weights

    skip = ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
            "input_layernorm", "post_attention_layernorm")  # fmt: skip
    state = {}
    for name, w in load_file(prequantized / "model.safetensors").items():
        if any(p in name for p in skip):
            state[name] = w
            continue
        scale = 1.0 / w.abs().mean().clamp_(min=1e-05)  # onebitllms' _weight_quant, bfloat16
        u = (w * scale).round().clamp_(-1, 1)
        state[name] = pack_weights(u)
        state[name.replace("weight", "weight_scale")] = scale.view(1)
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((prequantized / "config.json").read_text())
    config["is_bitnet_config"] = True
    config["quantization_config"] = {
        "modules_to_not_convert": ["lm_head"],
        "quant_method": "bitnet",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    AutoTokenizer.from_pretrained(prequantized).save_pretrained(out)
    return out
