"""The lm-eval model ``ternlab`` (C++ engine) against lm-eval's ``hf`` on the same weights,
perplexity through both backends, and GSM8K offline with a limit, end to end.

:func:`eval_models` (used by the other ``test_evals_*`` files too) trains a tiny
ternary model and its FP twin once per session and exports them to I2_S and F16.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from export_helpers import quick_checkpoint

pytest.importorskip("lm_eval")
# Every test here uses the tiny models trained and exported once per session (~15 s).
pytestmark = pytest.mark.slow

from lm_eval.api.instance import Instance  # noqa: E402

from ternlab.evals.arith_task import ArithSplit, heldout_examples, heldout_texts  # noqa: E402
from ternlab.evals.backends import (  # noqa: E402
    EngineScorer,
    TorchScorer,
    checkpoint_dir,
    is_gguf,
    lm_eval_model,
)
from ternlab.evals.perplexity import perplexity, token_nlls  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GSM8K = SHARED / "gsm8k"
TRAIN_EXAMPLES = 300  # quick_checkpoint's data.arith.num_examples
SPLIT = ArithSplit(num_examples=8, train_num_examples=TRAIN_EXAMPLES)


def eval_models(tmp_path_factory) -> dict[str, Path]:
    """``{tern_ckpt, fp_ckpt, tern_gguf, fp_gguf}``, trained and exported once per session.

    The ``tiny`` preset widened to rows of 128 (I2_S's unit), 40 steps each.
    """
    from ternlab.export.gguf_export import export_gguf

    base = tmp_path_factory.getbasetemp() / "evals-models"
    index = base / "models.json"
    if not index.exists():
        shape = ("model.hidden_size=128", "model.intermediate_size=256", "trainer.max_steps=40")
        tern = quick_checkpoint(base / "tern", *shape)
        fp = quick_checkpoint(base / "fp", "quant=none", *shape)
        paths = {
            "tern_ckpt": tern,
            "fp_ckpt": fp,
            "tern_gguf": export_gguf(tern, base / "tern-i2_s.gguf", "i2_s").path,
            "fp_gguf": export_gguf(fp, base / "fp-f16.gguf", "f16").path,
        }
        index.write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    return {k: Path(v) for k, v in json.loads(index.read_text()).items()}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return eval_models(tmp_path_factory)


@pytest.fixture(scope="module")
def lms(models):
    """``{kind: (ternlab LM on the GGUF, hf LM on the checkpoint)}``."""
    return {
        kind: (
            lm_eval_model(models[f"{kind}_gguf"], threads=1),
            lm_eval_model(models[f"{kind}_ckpt"], threads=1),
        )
        for kind in ("tern", "fp")
    }


def test_model_paths(models, tmp_path):
    assert is_gguf(models["tern_gguf"]) and not is_gguf(models["tern_ckpt"])
    run = models["tern_ckpt"].parents[1]  # <run>/checkpoints/step-N -> <run>
    assert checkpoint_dir(run) == models["tern_ckpt"]
    with pytest.raises(FileNotFoundError, match="neither a GGUF file nor a ternlab checkpoint"):
        checkpoint_dir(tmp_path)


def test_registered_with_lm_eval():
    from lm_eval.api.registry import get_model

    from ternlab.evals.lm_eval_model import TernlabLM

    assert get_model("ternlab") is TernlabLM
    assert get_model("hf").__name__ == "HFLM"  # lm-eval's own models are still there
    with pytest.raises(ValueError, match="path=model.gguf"):
        TernlabLM()


def test_engine_tokenizes_like_the_checkpoint(models):
    eng, tor = EngineScorer(models["tern_gguf"], 1), TorchScorer(models["tern_ckpt"], 1)
    texts = heldout_texts(SPLIT) + ["Plain words, digits 12345 and  spaces.\n\nNew line."]
    for t in texts:
        assert eng.encode(t) == tor.encode(t)
    assert eng.prefix_token == tor.prefix_token


def _requests(n: int = 6) -> list[Instance]:
    reqs = []
    for i, ex in enumerate(heldout_examples(SPLIT)[:n]):
        ctx = f"Question: {ex.question}\nAnswer:"
        reqs.append(Instance("loglikelihood", {}, (ctx, " " + ex.answer), i))
    reqs.append(Instance("loglikelihood", {}, ("", "Question: Ada has"), n))  # empty context
    return reqs


@pytest.mark.parametrize("kind", ["tern", "fp"])
def test_loglikelihood_matches_hf(lms, kind):
    """Same requests, same numbers: the engine (I2_S / F16 file) against HFLM (PyTorch)."""
    ours, hf = lms[kind]
    # Both prepend BOS to a context, as training did (the file's add_bos_token).
    ctx = _requests()[0].args[0]
    assert ours.tok_encode(ctx) == hf.tok_encode(ctx)
    assert ours.tok_encode(ctx)[0] == ours.prefix_token_id == hf.prefix_token_id
    a, b = ours.loglikelihood(_requests()), hf.loglikelihood(_requests())
    # Per-token differences: the engine's int8 activation path / the F16 file's rounding.
    tol = 2e-2 if kind == "tern" else 5e-2
    for (la, ga), (lb, gb) in zip(a, b, strict=True):
        assert la == pytest.approx(lb, rel=1e-3, abs=tol)
        assert ga == gb
    docs = [
        Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(heldout_texts(SPLIT))
    ]
    ra, rb = ours.loglikelihood_rolling(docs), hf.loglikelihood_rolling(docs)
    assert np.allclose(ra, rb, rtol=1e-3, atol=tol)


def test_rolling_windows_longer_than_context(lms):
    """A document longer than the context is cut into lm-eval's windows the same way."""
    ours, hf = lms["tern"]
    long = " ".join(heldout_texts(ArithSplit(num_examples=40, train_num_examples=TRAIN_EXAMPLES)))
    assert len(ours.tok_encode(long)) > ours.max_length
    req = [Instance("loglikelihood_rolling", {}, (long,), 0)]
    assert ours.loglikelihood_rolling(req)[0] == pytest.approx(
        hf.loglikelihood_rolling(req)[0], rel=1e-3
    )


def _torch_greedy(model, ids: list[int], n: int) -> tuple[list[int], list[float]]:
    """Greedy tokens of the PyTorch model and, per step, the top-1 minus top-2 logit."""
    toks, margins = [], []
    x = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(n):
            top = model(x).logits[0, -1].topk(2)
            toks.append(int(top.indices[0]))
            margins.append(float(top.values[0] - top.values[1]))
            x = torch.cat([x, top.indices[:1].view(1, 1)], dim=1)
    return toks, margins


def test_generate_until_is_greedy_decoding(lms):
    """The engine's generation equals PyTorch's greedy decoding of the same weights up to the
    first near-tie (the F16 embeddings of the file move logits by ~1e-2), and the text is
    lm-eval's: cut before the first stop string."""
    ours, hf = lms["tern"]
    compared = 0
    for ex in heldout_examples(SPLIT)[:4]:
        ctx = f"Question: {ex.question}\nAnswer:"
        kw = {"until": ["Question:"], "max_gen_toks": 24, "do_sample": False}
        text = ours.generate_until([Instance("generate_until", {}, (ctx, kw), 0)])[0]
        toks = ours.engine.last.tokens
        assert text == ours.engine.decode(toks).split("Question:")[0]
        want, margins = _torch_greedy(hf.model, ours.tok_encode(ctx), len(toks))
        k = next((i for i, m in enumerate(margins) if m < 0.05), len(toks))
        assert toks[:k] == want[:k]
        compared += k
    assert compared >= 10  # the comparison covered real generated text


@pytest.mark.parametrize("kind", ["tern", "fp"])
def test_perplexity_engine_agrees_with_pytorch(models, kind):
    eng = EngineScorer(models[f"{kind}_gguf"], 1)
    tor = TorchScorer(models[f"{kind}_ckpt"], 1)
    docs = heldout_texts(SPLIT)
    pe, pt = perplexity(eng, docs), perplexity(tor, docs)
    assert pe.n_tokens == pt.n_tokens > 100
    assert pe.ppl == pytest.approx(pt.ppl, rel=2e-3)


def test_torch_perplexity_is_cross_entropy(models):
    """Independent check: one document, [BOS] + tokens, torch's own cross-entropy."""
    tor = TorchScorer(models["fp_ckpt"], 1)
    doc = heldout_texts(SPLIT)[0]
    ids = tor.encode(doc)
    x = torch.tensor([[tor.prefix_token, *ids]])
    with torch.no_grad():
        logits = tor.model(x).logits[0, :-1]
    ce = torch.nn.functional.cross_entropy(logits, x[0, 1:]).item()
    assert token_nlls(tor, ids).mean() == pytest.approx(ce, rel=1e-5)
    assert perplexity(tor, [doc]).ppl == pytest.approx(math.exp(ce), rel=1e-5)


@pytest.mark.skipif(not (GSM8K / "test.jsonl").is_file(), reason=f"no GSM8K at {GSM8K}")
@pytest.mark.parametrize("which", ["tern_gguf", "tern_ckpt"])
def test_gsm8k_offline_with_limit(models, which, tmp_path):
    from ternlab.evals.gsm8k import gsm8k_config
    from ternlab.evals.quality import run_tasks
    from ternlab.evals.scoring import extract

    cfg = gsm8k_config(GSM8K, num_fewshot=1, cache_dir=tmp_path, max_gen_toks=24)
    res = run_tasks(lm_eval_model(models[which], threads=1), [cfg], limit=2)["gsm8k"]
    assert res["n"] == 2 and res["num_fewshot"] == 1
    for key in ("strict_match", "flexible_extract"):
        assert 0.0 <= res[key] <= 1.0
    for s in res["samples"]:  # lm-eval's filtered answers are what our extractor gives
        assert s["strict-match"]["answer"] == extract(cfg, s["output"], "strict-match")
        assert s["flexible-extract"]["answer"] == extract(cfg, s["output"], "flexible-extract")


@pytest.mark.skipif(not (GSM8K / "test.jsonl").is_file(), reason=f"no GSM8K at {GSM8K}")
def test_lm_eval_command_line_with_model_ternlab(models, tmp_path):
    """``python -m ternlab.evals.lm_eval_cli --model ternlab ...`` is lm-eval's CLI."""
    task = tmp_path / "tasks" / "gsm8k_local.yaml"
    task.parent.mkdir()
    task.write_text(
        f"include: {Path(__import__('lm_eval.tasks').tasks.__file__).parent}/gsm8k/gsm8k.yaml\n"
        "task: gsm8k_local\ndataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    train: {GSM8K}/train.jsonl\n"
        f"    test: {GSM8K}/test.jsonl\n  cache_dir: {tmp_path / 'hf'}\n"
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ternlab.evals.lm_eval_cli", "--model", "ternlab",
           "--model_args", f"path={models['tern_gguf']},threads=1", "--tasks", "gsm8k_local",
           "--include_path", str(task.parent), "--limit", "1", "--num_fewshot", "0",
           "--gen_kwargs", "max_gen_toks=16", "--output_path", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    assert "exact_match,strict-match" in results["results"]["gsm8k_local"]
    assert results["config"]["model"] == "ternlab"
