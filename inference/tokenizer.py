"""The text tokenizer of a GGUF file, rebuilt as a ``tokenizers.Tokenizer``.

Two sources, in this order:

1. ``tokenizer.huggingface.json``: the checkpoint's ``tokenizer.json`` verbatim
   (ternlab's exporter always writes it), so encoding is exactly the training tokenizer's.
2. ``tokenizer.ggml.tokens`` + ``tokenizer.ggml.merges`` with ``tokenizer.ggml.model ==
   "gpt2"``: a byte-level BPE as llama.cpp builds it, the split regex chosen by
   ``tokenizer.ggml.pre`` (the GPT-2 or the Llama 3 pattern), so that GGUF files made by
   llama.cpp's converter load too. Other tokenizer models (SentencePiece ``llama``, ...)
   are refused with a clear message. bitnet.cpp's converter for 2B4T writes no
   ``tokenizer.ggml.pre``: the split is then inferred from the vocabulary (Llama 3's
   or GPT-2's special tokens), with a warning naming the file and what was inferred
   (``TextTokenizer.note``); a vocabulary matching neither is refused.

BOS/EOS ids and whether to add BOS come from the ``tokenizer.ggml.*`` keys.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

K_HF_JSON = "tokenizer.huggingface.json"
K_MODEL = "tokenizer.ggml.model"
K_PRE = "tokenizer.ggml.pre"
K_TOKENS = "tokenizer.ggml.tokens"
K_MERGES = "tokenizer.ggml.merges"
K_TYPES = "tokenizer.ggml.token_type"

# llama.cpp's `tokenizer.ggml.pre` names that use each split (llama-vocab.cpp).
GPT2_PRES = frozenset(
    {"gpt-2", "phi-2", "jina-es", "jina-de", "jina-v1-en", "jina-v2-es", "jina-v2-de",
     "jina-v2-code", "roberta-bpe", "gigachat"}
)  # fmt: skip
LLAMA3_PRES = frozenset({"llama3", "llama-v3", "llama-bpe", "falcon3"})
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# ggml token types (gguf-py TokenType).
_CONTROL, _USER_DEFINED = 3, 4
#: Special tokens that identify a vocabulary when ``tokenizer.ggml.pre`` is missing.
LLAMA3_SIGNATURE = ("<|begin_of_text|>", "<|end_of_text|>")
GPT2_SIGNATURE = ("<|endoftext|>",)


class TokenizerError(ValueError):
    """The file's tokenizer cannot be rebuilt; the message names the file and the key."""


@dataclass
class TextTokenizer:
    """Text <-> token ids for one model, with its special ids."""

    tokenizer: Tokenizer
    bos_id: int | None
    eos_id: int | None
    eot_id: int | None
    add_bos: bool
    source: str  # the metadata key it was rebuilt from
    note: str | None = None  # what was inferred rather than read (e.g. the pre-tokenizer)

    def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
        """Token ids of ``text``; special tokens written in the text become their ids.

        ``add_bos=None`` follows the file's ``tokenizer.ggml.add_bos_token``. BOS is not
        added a second time when the text already starts with it (chat templates often
        write ``{{ bos_token }}`` themselves).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        want_bos = self.add_bos if add_bos is None else add_bos
        if want_bos and self.bos_id is not None and (not ids or ids[0] != self.bos_id):
            ids.insert(0, self.bos_id)
        return ids

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``, special tokens (BOS, EOS, padding) left out."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def token_text(self, token_id: int | None) -> str:
        """The literal text of one token (e.g. ``"<|eos|>"``), ``""`` for ``None``."""
        if token_id is None:
            return ""
        return self.tokenizer.id_to_token(token_id) or ""

    def stream(self, context: list[int] = ()) -> IncrementalDecoder:
        """A decoder for generated ids that continue ``context`` (the prompt)."""
        return IncrementalDecoder(self, context)


class IncrementalDecoder:
    """Turns generated token ids into text pieces, one call per token.

    A piece is released only once it decodes to complete characters: a multi-byte
    UTF-8 character split across byte-level tokens yields ``""`` until its last byte
    arrives, then the whole character. Text is decoded from a few tokens back
    (``prefix``) and the difference taken, so decoders that strip a leading space
    from the first token (SentencePiece's Metaspace) still give the right spacing.
    """

    CONTEXT = 4  # prompt tokens decoded in front of the first generated one

    def __init__(self, tok: TextTokenizer, context: list[int] = ()) -> None:
        self.tok = tok
        self.ids = list(context)[-self.CONTEXT :]
        # Start after the context, or at 0 if the context ends inside a character.
        self.prefix = 0 if not tok.decode(self.ids).endswith("\ufffd") else len(self.ids)
        self.read = len(self.ids)

    def push(self, token_id: int) -> str:
        """Add one generated id; returns the newly completed text (maybe ``""``)."""
        self.ids.append(int(token_id))
        done = self.tok.decode(self.ids[self.prefix : self.read])
        full = self.tok.decode(self.ids[self.prefix :])
        if len(full) > len(done) and not full.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return full[len(done) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character ends as U+FFFD)."""
        done = self.tok.decode(self.ids[self.prefix : self.read])
        full = self.tok.decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return full[len(done) :] if len(full) > len(done) else ""


def tokenizer_from_metadata(meta: Mapping[str, object], path: str = "<gguf>") -> TextTokenizer:
    """Rebuild the tokenizer of the GGUF file ``path`` from its metadata ``meta``."""
    if isinstance(meta.get(K_HF_JSON), str):
        try:
            tok = Tokenizer.from_str(meta[K_HF_JSON])
        except Exception as e:  # tokenizers raises plain Exception subclasses
            raise TokenizerError(f"{path}: {K_HF_JSON} is not a valid tokenizer.json: {e}") from e
        source, note = K_HF_JSON, None
    else:
        tok, note = _bpe_from_ggml(meta, path)
        source = K_TOKENS
    n_tokens = tok.get_vocab_size(with_added_tokens=True)
    return TextTokenizer(
        tokenizer=tok,
        bos_id=_token_id(meta, "tokenizer.ggml.bos_token_id", n_tokens, path),
        eos_id=_token_id(meta, "tokenizer.ggml.eos_token_id", n_tokens, path),
        eot_id=_token_id(meta, "tokenizer.ggml.eot_token_id", n_tokens, path),
        add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        source=source,
        note=note,
    )


def _token_id(meta: Mapping[str, object], key: str, n: int, path: str) -> int | None:
    v = meta.get(key)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < n:
        raise TokenizerError(f"{path}: {key} = {v!r} is not a token id of the {n}-token vocab")
    return v


def infer_pre(tokens: list[str], path: str) -> tuple[str, str]:
    """The ``tokenizer.ggml.pre`` a file without one needs, from its special tokens, and a note.

    Raises :class:`TokenizerError` when the vocabulary is neither Llama 3's nor GPT-2's:
    a wrong split encodes every text differently from training, so nothing is guessed.
    """
    specials = {t for t in tokens if t.startswith("<|")}
    for pre, signature, family in (
        ("llama-bpe", LLAMA3_SIGNATURE, "Llama 3"),
        ("gpt-2", GPT2_SIGNATURE, "GPT-2"),
    ):
        if all(t in specials for t in signature):
            return pre, (
                f"{path}: no {K_PRE} key; the vocabulary has {family}'s special tokens "
                f"({', '.join(signature)}), so {family}'s pre-tokenizer ({pre!r}) is used"
            )
    raise TokenizerError(
        f"{path}: no {K_PRE} key, and the vocabulary has neither Llama 3's special tokens "
        f"({', '.join(LLAMA3_SIGNATURE)}) nor GPT-2's ({', '.join(GPT2_SIGNATURE)}); add the key "
        f"(e.g. gguf-py's gguf_new_metadata.py) with one of: "
        + ", ".join(sorted(GPT2_PRES | LLAMA3_PRES))
    )


def _bpe_from_ggml(meta: Mapping[str, object], path: str) -> tuple[Tokenizer, str | None]:
    """A byte-level BPE from llama.cpp's ``tokenizer.ggml.*`` arrays, and a note if inferred."""
    model = meta.get(K_MODEL)
    if model is None:
        raise TokenizerError(f"{path}: no tokenizer in the file ({K_HF_JSON} or {K_MODEL})")
    if model != "gpt2":
        raise TokenizerError(
            f"{path}: {K_MODEL} = {model!r} is not supported; ternlab runs byte-level BPE "
            f"('gpt2') tokenizers only, or any tokenizer stored as {K_HF_JSON} "
            "(SentencePiece 'llama' vocabularies are not supported)"
        )
    tokens, merges = meta.get(K_TOKENS), meta.get(K_MERGES)
    if not isinstance(tokens, list) or not tokens or not isinstance(merges, list):
        raise TokenizerError(f"{path}: {K_MODEL} is 'gpt2' but {K_TOKENS} / {K_MERGES} is missing")
    note = None
    if meta.get(K_PRE) is None:
        pre, note = infer_pre(tokens, path)
        warnings.warn(note, stacklevel=3)
    else:
        pre = str(meta[K_PRE])
    vocab = {t: i for i, t in reversed(list(enumerate(tokens)))}  # first id wins on duplicates
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    if pre in GPT2_PRES:
        tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif pre in LLAMA3_PRES:
        tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, ignore_merges=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        raise TokenizerError(
            f"{path}: {K_PRE} = {pre!r} is not supported; known pre-tokenizers: "
            + ", ".join(sorted(GPT2_PRES | LLAMA3_PRES))
        )
    tok.decoder = decoders.ByteLevel()
    _add_special(tok, tokens, meta.get(K_TYPES))
    return tok, note


def _add_special(tok: Tokenizer, tokens: list[str], types: object) -> None:
    """Control tokens become special added tokens, user-defined ones plain added tokens."""
    if not isinstance(types, list) or len(types) != len(tokens):
        return
    special = [t for t, k in zip(tokens, types, strict=True) if k == _CONTROL]
    user = [t for t, k in zip(tokens, types, strict=True) if k == _USER_DEFINED]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in user])
