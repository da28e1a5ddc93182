"""One tiny trained checkpoint exported to GGUF, shared by the engine tests of a session."""

from __future__ import annotations

from pathlib import Path

from export_helpers import quick_checkpoint


def engine_model(tmp_path_factory) -> tuple[Path, Path]:
    """``(gguf_path, checkpoint_dir)``: trained and exported once per pytest session.

    A SiLU model with tied embeddings (llama.cpp's ``bitnet``), rows of 256 values,
    exported to I2_S; its context is 256 tokens.
    """
    from ternlab.export.gguf_export import export_gguf

    base = tmp_path_factory.getbasetemp() / "engine-model"
    gguf, where = base / "model.gguf", base / "checkpoint.txt"
    if not gguf.exists():
        ckpt = quick_checkpoint(
            base,
            "model.hidden_size=256",
            "model.intermediate_size=512",
            "model.hidden_act=silu",
            "model.tie_word_embeddings=true",
        )
        export_gguf(ckpt, gguf, "i2_s")
        where.write_text(str(ckpt))
    return gguf, Path(where.read_text())
