"""Local data files (text, JSONL) through `datasets`, and the error for a missing file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ternlab.train import compose
from ternlab.train.data import build_tokenizer, load_texts, prepare_data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared data file {path} is absent (fetch it to run this test)")
    return path


def test_missing_file_names_data_path_and_the_fix(tmp_path):
    cfg = compose(
        ["data=tinyshakespeare", f"data.path={tmp_path}/nope.txt", f"data.cache_dir={tmp_path}"]
    )
    with pytest.raises(FileNotFoundError, match=r"data\.path: no file at .*Override data\.path="):
        build_tokenizer(cfg.data)


def test_local_jsonl_with_template(tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(f'{{"q": "what is {i}+1", "a": "{i + 1}"}}\n' for i in range(200)))
    cfg = compose(
        [
            f"data.path={f}",
            "data.source=file",
            "data.name=rows",
            f"data.cache_dir={tmp_path}",
            "data.seq_len=16",
            "data.vocab_size=300",
        ]
    )
    cfg.data.template = "Q: {q}\nA: {a}"  # (on the command line: 'data.template="..."')
    texts = load_texts(cfg.data)
    assert texts[3] == "Q: what is 3+1\nA: 4"
    splits = prepare_data(cfg.data, build_tokenizer(cfg.data))
    assert len(splits.train) > len(splits.val) > 0


def test_tinyshakespeare_text_file(tmp_path):
    path = _need(SHARED / "tinyshakespeare" / "input.txt")
    cfg = compose(
        [
            "data=tinyshakespeare",
            f"data.path={path}",
            f"data.cache_dir={tmp_path}",
            "data.vocab_size=400",
        ]
    )
    tok = build_tokenizer(cfg.data)
    assert len(tok) == 400
    splits = prepare_data(cfg.data, tok)
    assert splits.train.shape[1] == 128 and len(splits.val) >= 1
    text = tok.decode(splits.train[0].tolist())
    assert text.strip()


def test_gsm8k_jsonl(tmp_path):
    path = _need(SHARED / "gsm8k" / "test.jsonl")
    cfg = compose(["data=gsm8k", f"data.path={path}", f"data.cache_dir={tmp_path}"])
    texts = load_texts(cfg.data)
    assert texts[0].startswith("Question: ") and "####" in texts[0]


def test_local_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    f = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": [f"line number {i}" for i in range(300)]}), f)
    cfg = compose(
        [
            f"data.path={f}",
            "data.source=file",
            "data.name=pq",
            f"data.cache_dir={tmp_path}",
            "data.seq_len=16",
            "data.vocab_size=300",
        ]
    )
    assert load_texts(cfg.data)[7] == "line number 7"
    assert len(prepare_data(cfg.data, build_tokenizer(cfg.data)).train) > 0
