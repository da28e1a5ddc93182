"""``lm_eval --model ternlab``: lm-eval's model interface on ternlab's C++ engine.

Importing this module registers the model under the name ``ternlab`` in lm-eval's
registry. lm-eval 0.4.13's command line finds models only in that registry (it has
no plug-in entry points), so run it through ternlab's wrapper, which imports this
module first::

    python -m ternlab.evals.lm_eval_cli --model ternlab \\
        --model_args path=model.gguf,threads=2 --tasks gsm8k --limit 10
    ternlab eval lm-eval --model ternlab --model_args path=model.gguf ...   # the same

Model arguments: ``path`` (the GGUF file), ``threads``, ``n_ctx`` (default: the
file's training context), ``add_bos_token`` (default: the file's
``tokenizer.ggml.add_bos_token``), ``max_gen_toks`` (default 256, as lm-eval's ``hf``).

Semantics follow lm-eval's ``hf`` model (``HFLM``) so the two give the same numbers
on the same weights: contexts are left-truncated to the context size, an empty
context is conditioned on BOS (EOS without one), rolling log-likelihoods use
lm-eval's own disjoint windows, and generation is greedy unless the task samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from lm_eval import utils
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models import MODEL_MAPPING  # noqa: F401  registers lm-eval's own models first
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs
from tqdm import tqdm

from ternlab.inference.engine import Engine

MODEL_NAME = "ternlab"


def _as_bool(v: Any) -> bool | None:
    if v is None or isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes"):
        return True
    if s in ("0", "false", "no"):
        return False
    raise ValueError(f"--model_args add_bos_token={v!r}: use true or false")


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64 (scores are sums of many of these)."""
    z = x.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def score_continuation(logits: np.ndarray, cont: list[int]) -> tuple[float, bool]:
    """Sum of log-probs of ``cont`` under the last ``len(cont)`` rows of ``logits``, and
    whether greedy decoding would have produced exactly ``cont``."""
    rows = log_softmax(logits[-len(cont) :])
    idx = np.asarray(cont)
    logprob = float(rows[np.arange(len(cont)), idx].sum())
    greedy = bool((rows.argmax(axis=-1) == idx).all())
    return logprob, greedy


@register_model(MODEL_NAME)
class TernlabLM(TemplateLM):
    """An lm-eval model backed by :class:`ternlab.inference.engine.Engine` (a GGUF file)."""

    def __init__(
        self,
        path: str | None = None,
        threads: int | str | None = None,
        n_ctx: int | str | None = None,
        add_bos_token: bool | str | None = None,
        max_gen_toks: int | str = 256,
        batch_size: int | str | None = None,  # accepted for CLI compatibility; unused
        **kwargs: Any,
    ) -> None:
        super().__init__()
        path = path or kwargs.pop("pretrained", None)
        if not path:
            raise ValueError(
                "--model ternlab needs a GGUF file: --model_args path=model.gguf[,threads=N]"
            )
        unknown = set(kwargs) - {"device", "dtype", "max_batch_size"}
        if unknown:
            raise ValueError(
                f"--model_args: unknown argument(s) {sorted(unknown)} for --model ternlab; "
                "use path, threads, n_ctx, add_bos_token, max_gen_toks"
            )
        self.engine = Engine(
            path, threads=int(threads) if threads else None, n_ctx=int(n_ctx) if n_ctx else None
        )
        self.add_bos_token = _as_bool(add_bos_token)
        self._max_gen_toks = int(max_gen_toks)
        self.path = str(path)

    # ------------------------------------------------------------- tokenization
    @property
    def eot_token_id(self) -> int:
        return self.engine.eos_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.engine.bos_id
        return bos if bos is not None else self.engine.eos_id

    @property
    def max_length(self) -> int:
        return self.engine.n_ctx

    @property
    def max_gen_toks(self) -> int:
        return self._max_gen_toks

    @property
    def tokenizer_name(self) -> str:
        return self.path

    def tok_encode(
        self, string: str, add_special_tokens: bool | None = None, **kwargs: Any
    ) -> list[int]:
        # As HFLM: an explicit flag wins, then the model argument, then the file's default.
        # The engine never adds BOS to a string that already starts with it.
        add_bos = add_special_tokens if add_special_tokens is not None else self.add_bos_token
        return self.engine.encode(string, add_bos)

    def tok_decode(self, tokens: list[int], **kwargs: Any) -> str:
        return self.engine.decode(tokens)

    # ---------------------------------------------------------------- scoring
    def _loglikelihood_tokens(
        self, requests: list[tuple[Any, list[int], list[int]]], disable_tqdm: bool = False, **_
    ) -> list[tuple[float, bool]]:
        out = []
        for key, context_enc, continuation_enc in tqdm(
            requests, disable=disable_tqdm, desc="ternlab loglikelihood"
        ):
            # As HFLM: keep the last max_length tokens of context+continuation as input.
            inp = (context_enc + continuation_enc)[-(self.max_length + 1) :][:-1]
            cont = continuation_enc[-self.max_length :]
            # Only the rows scoring `cont` are needed: choices sharing a context reuse its
            # cached keys and values (the engine keeps the common prefix).
            logits = self.engine.logits(inp, first=max(len(inp) - len(cont), 0))
            res = score_continuation(logits, cont)
            out.append(res)
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, res)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        out = []
        for (string,) in tqdm(
            [r.args for r in requests], disable=disable_tqdm, desc="ternlab rolling"
        ):
            windows = [
                (None, *utils.make_disjoint_window(w))
                for w in utils.get_rolling_token_windows(
                    token_list=self.tok_encode(string),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                )
            ]
            total = sum(ll for ll, _ in self._loglikelihood_tokens(windows, disable_tqdm=True))
            out.append(total)
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
        return out

    # -------------------------------------------------------------- generation
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        eos = self.engine.tokenizer.token_text(self.eot_token_id)
        for context, gen_kwargs in tqdm(
            [r.args for r in requests], disable=disable_tqdm, desc="ternlab generate"
        ):
            kw = normalize_gen_kwargs(dict(gen_kwargs), self.max_gen_toks)
            until = handle_stop_sequences(kw.pop("until", None), eos=eos)
            max_gen = int(kw.pop("max_gen_toks"))
            ids = self.tok_encode(context)
            # As HFLM: leave room for the generation by left-truncating the prompt.
            ids = ids[-max(self.max_length - max_gen, 1) :]
            max_gen = min(max_gen, self.max_length - len(ids))
            text = "".join(
                self.engine.generate(
                    ids,
                    max_tokens=max_gen,
                    temperature=float(kw.get("temperature", 0.0)) if kw.get("do_sample") else 0.0,
                    top_k=int(kw.get("top_k", 0) or 0),
                    top_p=float(kw.get("top_p", 1.0) or 1.0),
                    seed=kw.get("seed"),
                    stop=until,
                )
            )
            out.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return out

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return self.engine.render_chat(chat_history, add_generation_prompt)
