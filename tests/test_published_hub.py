"""Hub ids in place of paths: resolved through huggingface_hub's cache; clear offline errors.

No network in tests: ``HF_HUB_OFFLINE=1`` and an empty (or hand-filled) cache folder.
"""

from __future__ import annotations

import argparse

import pytest

from ternlab.hub import HubError, is_hub_id, resolve

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_hub_id_shape():
    assert is_hub_id("microsoft/bitnet-b1.58-2B-4T") and is_hub_id("a/b@v1.0")
    assert not is_hub_id("model.gguf") and not is_hub_id("./a/b") and not is_hub_id("a/b/c")


def test_local_path_is_used_as_is(tmp_path, offline):
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "name").mkdir()
    assert resolve(tmp_path / "owner" / "name", "x") == tmp_path / "owner" / "name"


def test_offline_error_names_the_id_and_the_fix(offline):
    with pytest.raises(HubError) as e:
        resolve("someone/not-cached", "model.init_from")
    msg = str(e.value)
    for part in ("model.init_from", "'someone/not-cached'", "HF_HUB_OFFLINE", "hf download"):
        assert part in msg


def test_cached_id_resolves_offline(offline):
    repo = offline / "models--someone--cached"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    (repo / "snapshots" / COMMIT / "config.json").write_text("{}")
    got = resolve("someone/cached", "data.tokenizer")
    assert (got / "config.json").is_file() and got.name == COMMIT


def test_init_from_and_tokenizer_take_hub_ids(offline):
    from ternlab.train.model import _load_pretrained
    from ternlab.train.tokenizer import load_tokenizer

    with pytest.raises(FileNotFoundError, match="model.init_from: 'someone/model'.*hf download"):
        _load_pretrained("someone/model")
    with pytest.raises(FileNotFoundError, match="data.tokenizer: 'someone/tok'.*hf download"):
        load_tokenizer("someone/tok")


def test_cli_import_hub_id_offline(offline, tmp_path, capsys):
    from ternlab.export.cli import add_export_commands

    parser = argparse.ArgumentParser(prog="ternlab")
    add_export_commands(parser.add_subparsers())
    args = parser.parse_args(["import", "microsoft/bitnet-b1.58-2B-4T", "-o", str(tmp_path / "c")])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "ternlab import: 'microsoft/bitnet-b1.58-2B-4T'" in err and "hf download" in err
    assert not (tmp_path / "c").exists()


def test_eval_takes_hub_ids(offline, capsys):
    from ternlab.cli import main

    assert main(["eval", "ppl", "someone/model-gguf"]) == 1
    err = capsys.readouterr().err
    assert "ternlab eval model: 'someone/model-gguf'" in err and "hf download" in err
