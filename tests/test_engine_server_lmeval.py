"""lm-eval's own API clients (``local-completions``, ``local-chat-completions``) against
``ternlab serve``: the same GSM8K scores as ``ternlab eval`` (lm-eval's ``ternlab`` model
on the engine) and the same log-likelihoods as the engine's logits."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from engine_helpers import engine_model

from ternlab.inference.engine import Engine
from ternlab.inference.server import make_server

pytest.importorskip("tenacity", reason="lm-eval's API models need lm-eval[api] (tenacity)")
pytest.importorskip("aiohttp", reason="lm-eval's API models need lm-eval[api] (aiohttp)")

GSM8K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k"
needs_gsm8k = pytest.mark.skipif(
    not (GSM8K / "test.jsonl").is_file(), reason=f"no GSM8K JSONL at {GSM8K}"
)
MAX_GEN = 24
N_DOCS = 8  # GSM8K test problems scored both ways


def _fitting_docs(path: Path, n: int) -> list[int]:
    """The first ``n`` problems whose zero-shot prompt, chat template and answer fit the
    test model's 256-token context (a few of the first ones do not)."""
    import json

    eng = Engine(path, threads=1)
    docs = []
    with open(GSM8K / "test.jsonl") as f:
        for i, line in enumerate(f):
            q = json.loads(line)["question"]
            text = eng.render_chat([{"role": "user", "content": f"Question: {q}\nAnswer:"}])
            if len(eng.encode(text)) + MAX_GEN < eng.n_ctx:
                docs.append(i)
                if len(docs) == n:
                    break
    return docs


@pytest.fixture(scope="module")
def path(tmp_path_factory) -> Path:
    return engine_model(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def url(path):
    server = make_server(Engine(path, threads=1, slots=2), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}"
    server.shutdown()
    server.server_close()


def _gsm8k(lm, tmp_path: Path, chat: bool, docs: list[int]) -> dict:
    from lm_eval import simple_evaluate

    from ternlab.evals.gsm8k import gsm8k_config, task_manager

    # Zero-shot keeps the prompts inside the test model's 256 tokens.
    cfg = gsm8k_config(GSM8K, num_fewshot=0, cache_dir=tmp_path, max_gen_toks=MAX_GEN)
    res = simple_evaluate(
        model=lm, tasks=[cfg], task_manager=task_manager(), samples={"gsm8k": docs},
        log_samples=True, apply_chat_template=chat, bootstrap_iters=0,
    )  # fmt: skip
    samples = sorted(res["samples"]["gsm8k"], key=lambda s: (s["doc_id"], s["filter"]))
    return {
        "results": {k: v for k, v in res["results"]["gsm8k"].items() if "stderr" not in k},
        "outputs": [(s["doc_id"], s["filter"], s["resps"], s["filtered_resps"]) for s in samples],
    }


@needs_gsm8k
@pytest.mark.slow
@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat-completions"])
def test_lm_eval_through_the_server_scores_gsm8k_like_ternlab_eval(url, path, tmp_path, chat):
    from lm_eval.models.openai_completions import LocalChatCompletion, LocalCompletionsAPI

    from ternlab.evals.lm_eval_model import TernlabLM

    docs = _fitting_docs(path, N_DOCS)
    assert len(docs) == N_DOCS
    lm = TernlabLM(path=str(path), threads=1, max_gen_toks=MAX_GEN)
    want = _gsm8k(lm, tmp_path, chat, docs)
    # Text prompts: the server tokenizes them as the engine does (BOS as the file says).
    kw = {"tokenizer_backend": None, "tokenized_requests": False, "max_gen_toks": MAX_GEN,
          "num_concurrent": 4, "max_retries": 1}  # fmt: skip
    if chat:
        lm = LocalChatCompletion(base_url=f"{url}/v1/chat/completions", **kw)
    else:
        lm = LocalCompletionsAPI(base_url=f"{url}/v1/completions", **kw)
    got = _gsm8k(lm, tmp_path, chat, docs)
    assert len(got["outputs"]) == 2 * N_DOCS  # two filters (strict, flexible) a problem
    assert got == want
    assert got["results"]["exact_match,strict-match"] is not None
    assert all(resps[0][0] for _, _, resps, _ in got["outputs"])  # the model said something


def test_lm_eval_loglikelihood_through_the_server_is_the_engines(url, path):
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    from ternlab.evals.lm_eval_model import score_continuation

    # tokenizer_backend "auto" finds the server's /tokenizer_info and /tokenize.
    lm = LocalCompletionsAPI(base_url=f"{url}/v1/completions", max_length=256, max_retries=1)
    assert lm.tokenizer_backend == "remote"
    pairs = [("12+30=", "42"), ("12+30=", "43\n"), ("7+8=", "15"), ("", "1+1=2")]
    reqs = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    got = lm.loglikelihood(reqs, disable_tqdm=True)
    eng = Engine(path, threads=1)
    prefix = eng.eos_id if eng.bos_id is None else eng.bos_id
    for (ctx, cont), (ll, greedy) in zip(pairs, got, strict=True):
        c = eng.encode(ctx, add_bos=False) or [prefix]  # remote tokenizer: no BOS added
        t = eng.encode(cont, add_bos=False)
        want_ll, want_greedy = score_continuation(eng.logits(c + t[:-1]), t)
        assert ll == pytest.approx(want_ll, rel=1e-12, abs=1e-12) and greedy == want_greedy
