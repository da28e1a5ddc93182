"""Training data: load texts, tokenize once, pack into fixed-length sequences, memory-map.

Sources (``data.source``): ``arith`` (the embedded generator), ``file`` (a local
text / JSONL / parquet file read with ``datasets``) and ``hub`` (a Hugging Face
Hub data set, for users with internet). Packed sequences are cached as ``.npy``
memmaps under ``data.cache_dir`` in a folder keyed by a hash of the data's
identity (file contents, generator settings or hub name), the tokenizer and the
sequence length, so a second run with the same data starts at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerBase

from ternlab.train.arith_data import generate
from ternlab.train.config import DataConfig
from ternlab.train.tokenizer import cached_bpe, load_tokenizer, tokenizer_fingerprint

_EXT_FORMAT = {
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
}


@dataclass
class PackedSplits:
    """Packed token sequences ``[n, seq_len]`` (memory-mapped) for training and validation."""

    train: np.ndarray
    val: np.ndarray
    cache_path: Path


def _file_path(cfg: DataConfig) -> Path:
    if not cfg.path:
        raise ValueError("data.path is not set; data.source=file needs a local file (conf/data/)")
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"data.path: no file at {cfg.path!r} (resolved {path.absolute()}); paths are relative "
            f"to the directory you launch from. Override data.path=/path/to/file"
        )
    return path


def _file_format(cfg: DataConfig, path: Path) -> str:
    fmt = cfg.format or _EXT_FORMAT.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"data.format: cannot tell the format of {str(path)!r} from its extension; "
            "set data.format=text|json|parquet"
        )
    return fmt


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_identity(cfg: DataConfig) -> str:
    """A hash naming the texts this config yields (no tokenization, no download)."""
    rows = {"source": cfg.source, "field": cfg.text_field, "template": cfg.template}
    if cfg.source == "arith":
        rows["arith"] = [cfg.arith.num_examples, cfg.arith.seed, cfg.arith.max_value]
    elif cfg.source == "file":
        path = _file_path(cfg)
        rows |= {
            "sha": _hash_file(path),
            "format": _file_format(cfg, path),
            "sample_by": cfg.sample_by,
        }
    else:
        rows |= {"hub": [cfg.hub_name, cfg.hub_config, cfg.hub_split, cfg.hub_revision]}
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def _row_text(cfg: DataConfig, row: dict) -> str:
    if cfg.template is not None:
        try:
            return cfg.template.format(**row)
        except KeyError as e:
            raise KeyError(
                f"data.template refers to {e} but the rows have fields {sorted(row)}"
            ) from None
    if cfg.text_field not in row:
        raise KeyError(
            f"data.text_field={cfg.text_field!r} is not a field of the rows ({sorted(row)}); "
            "set data.text_field or data.template"
        )
    return str(row[cfg.text_field])


def load_texts(cfg: DataConfig) -> list[str]:
    """All documents of the configured source, in order."""
    if cfg.source == "arith":
        a = cfg.arith
        return [ex.text() for ex in generate(a.num_examples, a.seed, a.max_value)]
    from datasets import load_dataset  # slow import: only on a cache miss

    hf_cache = str(Path(cfg.cache_dir) / "hf-datasets")
    if cfg.source == "file":
        path = _file_path(cfg)
        fmt = _file_format(cfg, path)
        extra = {"sample_by": cfg.sample_by} if fmt == "text" else {}
        ds = load_dataset(fmt, data_files=str(path), split="train", cache_dir=hf_cache, **extra)
    else:
        if not cfg.hub_name:
            raise ValueError("data.hub_name is not set; data.source=hub needs a Hub data set name")
        ds = load_dataset(
            cfg.hub_name,
            cfg.hub_config,
            split=cfg.hub_split,
            revision=cfg.hub_revision,
            cache_dir=hf_cache,
        )
    texts = [_row_text(cfg, row) for row in ds]
    return [t for t in texts if t.strip()]


def build_tokenizer(cfg: DataConfig) -> PreTrainedTokenizerBase:
    """``data.tokenizer`` if set, else a byte-level BPE trained on the data (cached)."""
    if cfg.tokenizer:
        return load_tokenizer(cfg.tokenizer)
    return cached_bpe(
        lambda: load_texts(cfg), data_identity(cfg), cfg.vocab_size, Path(cfg.cache_dir)
    )


def pack(texts: list[str], tokenizer: PreTrainedTokenizerBase, seq_len: int) -> np.ndarray:
    """Concatenate ``[BOS] doc [EOS]`` for every document and cut into ``[n, seq_len]`` rows.

    The last partial row is dropped; nothing is padded, so every position is trained on.
    """
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    stream = np.concatenate(
        [np.asarray([*bos, *doc, *eos], dtype=np.int64) for doc in ids]
        or [np.zeros(0, dtype=np.int64)]
    )
    n = len(stream) // seq_len
    return stream[: n * seq_len].reshape(n, seq_len)


def _token_dtype(tokenizer: PreTrainedTokenizerBase) -> np.dtype:
    return np.dtype(np.uint16) if len(tokenizer) <= np.iinfo(np.uint16).max else np.dtype(np.uint32)


def _write_cache(final: Path, rows: np.ndarray, val_fraction: float, dtype: np.dtype) -> None:
    n_val = max(1, int(round(len(rows) * val_fraction)))
    if len(rows) - n_val < 1:
        raise ValueError(
            f"data: only {len(rows)} packed sequences; need at least 2 for a train/validation "
            "split. Use more data or a smaller data.seq_len"
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-packed-", dir=final.parent))
    # Validation is the tail of the token stream (nanoGPT style): held out, deterministic.
    for name, part in (("train", rows[:-n_val]), ("val", rows[-n_val:])):
        mm = np.lib.format.open_memmap(
            tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=part.shape
        )
        mm[:] = part
        mm.flush()
        del mm
    try:
        os.replace(tmp, final)
    except OSError:  # a concurrent process wrote the same cache first
        shutil.rmtree(tmp, ignore_errors=True)


def prepare_data(
    cfg: DataConfig,
    tokenizer: PreTrainedTokenizerBase,
    texts_fn: Callable[[], list[str]] | None = None,
) -> PackedSplits:
    """Tokenize and pack once (cached), then memory-map the train and validation splits."""
    key_src = json.dumps(
        [data_identity(cfg), tokenizer_fingerprint(tokenizer), cfg.seq_len, cfg.val_fraction]
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    final = Path(cfg.cache_dir) / f"packed-{key}"
    if not final.exists():
        texts = (texts_fn or (lambda: load_texts(cfg)))()
        rows = pack(texts, tokenizer, cfg.seq_len)
        _write_cache(final, rows, cfg.val_fraction, _token_dtype(tokenizer))
    return PackedSplits(
        train=np.load(final / "train.npy", mmap_mode="r"),
        val=np.load(final / "val.npy", mmap_mode="r"),
        cache_path=final,
    )


def global_positions(step: int, global_batch: int) -> np.ndarray:
    """Positions in the endless sample stream used by optimizer step ``step``."""
    return np.arange(step * global_batch, (step + 1) * global_batch, dtype=np.int64)


def sample_indices(positions: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Map stream positions to row indices: epoch ``e`` visits rows in permutation(seed, e).

    A pure function of (position, n, seed), so a resumed run (or any number of
    processes) reads exactly the rows an uninterrupted single process would.
    """
    out = np.empty_like(positions)
    epochs = positions // n
    for e in np.unique(epochs):
        perm = np.random.default_rng([seed, int(e)]).permutation(n)
        sel = epochs == e
        out[sel] = perm[positions[sel] % n]
    return out


def micro_batch_rows(
    step: int,
    micro: int,
    rank: int,
    *,
    world: int,
    batch_size: int,
    grad_accum: int,
    n: int,
    seed: int,
) -> np.ndarray:
    """Row indices for one process's micro-batch ``micro`` of optimizer step ``step``.

    The global batch of a step is ``batch_size * world * grad_accum`` consecutive
    stream positions; micro-batch (micro, rank) takes its own contiguous slice.
    """
    pos = global_positions(step, batch_size * world * grad_accum)
    start = (micro * world + rank) * batch_size
    return sample_indices(pos[start : start + batch_size], n, seed)


def target_bytes(rows: np.ndarray, tokenizer: PreTrainedTokenizerBase) -> int:
    """UTF-8 bytes of the text of the target tokens of packed ``rows`` (all but position 0).

    Special tokens (BOS/EOS) count as zero bytes. Decoding row by row can split a
    multi-byte character at a row edge (counted as U+FFFD); negligible for real text.
    """
    total = 0
    for row in np.asarray(rows):
        text = tokenizer.decode(
            row[1:].tolist(), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        total += len(text.encode("utf-8"))
    return total
