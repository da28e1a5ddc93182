"""Tokenizers: a given ``transformers`` tokenizer, or a byte-level BPE trained on the data."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from ternlab.hub import is_hub_id, resolve

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
#: The files of a Hub repository a tokenizer needs (not the weights).
TOKENIZER_PATTERNS = ["*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken"]


def train_bpe(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE with BOS/EOS/PAD special tokens on ``texts``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD
    )


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A stable hash of the tokenizer's vocabulary and rules (keys the token cache)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    specials = f"{tokenizer.bos_token}|{tokenizer.eos_token}|{tokenizer.pad_token}"
    return hashlib.sha256((blob + specials).encode()).hexdigest()[:16]


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """Load a ``transformers`` tokenizer folder or Hub id, with a clear error if it is missing."""
    if not Path(path).exists() and not is_hub_id(path):
        raise FileNotFoundError(
            f"data.tokenizer: no tokenizer folder at {path!r} (cwd {os.getcwd()}); set "
            "data.tokenizer to a transformers tokenizer folder or Hub id, or null to train a BPE"
        )
    path = str(resolve(path, "data.tokenizer", allow_patterns=TOKENIZER_PATTERNS))
    tok = AutoTokenizer.from_pretrained(path)
    if tok.eos_token is None:
        raise ValueError(f"data.tokenizer: the tokenizer at {path!r} has no eos_token; set one")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # packing never pads; generation code wants one
    return tok


def cached_bpe(
    texts_fn, data_key: str, vocab_size: int, cache_dir: Path
) -> PreTrainedTokenizerFast:
    """Train a BPE once per (data, vocab size) and reuse it from ``cache_dir``.

    ``texts_fn`` is called only on a cache miss. The folder is written under a
    temporary name and renamed, so a killed run never leaves half a tokenizer.
    """
    final = cache_dir / f"tokenizer-{data_key}-v{vocab_size}"
    if not final.exists():
        tok = train_bpe(texts_fn(), vocab_size)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-tok-", dir=cache_dir))
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, final)
        except OSError:  # another process won the race: theirs is identical
            shutil.rmtree(tmp, ignore_errors=True)
    return PreTrainedTokenizerFast.from_pretrained(str(final))
