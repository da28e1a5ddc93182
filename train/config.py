"""Typed training configuration: the schema every Hydra YAML file in ``conf/`` is checked against.

Config flows one way: YAML (``conf/config.yaml`` and its groups) → these
dataclasses (registered with Hydra's ConfigStore as the structured schema, so
a misspelled key fails naming the key and the group) → code. Nothing else
(no environment variables, no globals) changes what a run does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

#: Name of the root schema node in the ConfigStore (``conf/config.yaml`` lists it first).
SCHEMA_NAME = "ternlab_train_schema"

HIDDEN_ACTS = ("relu2", "silu")
QUANT_METHODS = ("ternary", "none")
WEIGHT_SCALES = ("tensor", "channel", "group")
WEIGHT_ESTIMATORS = ("absmean", "absmedian")
ACT_BITS = (8, 4)
DISTILL_METHODS = ("none", "kd")
DATA_SOURCES = ("arith", "file", "hub")
FILE_FORMATS = ("text", "json", "parquet")
SCHEDULES = ("two_stage", "cosine", "constant")
PRECISIONS = ("no", "bf16", "fp16")
WANDB_MODES = ("online", "offline", "disabled")


@dataclass
class ModelConfig:
    """BitNet b1.58 shape (transformers' ``bitnet`` model type); file: ``conf/model/*.yaml``."""

    name: str = "tiny"
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    vocab_size: int | None = None  # None: the tokenizer's size; else must be >= it
    max_position_embeddings: int = 2048
    hidden_act: str = "relu2"  # relu2 (BitNet 2B4T) or silu (1bitLLM bitnet_b1_58, llama.cpp)
    tie_word_embeddings: bool = False
    rms_norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    initializer_range: float = 0.02
    init_from: str | None = None  # a pretrained full-precision causal LM folder to fine-tune


@dataclass
class QuantConfig:
    """``ternary`` (BitLinear everywhere but the LM head) or ``none`` (full-precision baseline)."""

    method: str = "ternary"
    warmup_steps: int = 0  # λ warmup 0 → 1 (fine-tuning from full precision); 0 = λ=1 from step 0
    start: float = 0.0  # λ at step 0 of the warmup
    exclude: list[str] | None = None  # None: keep the LM head full precision
    # Ablation knobs (docs/quantization.md, "Variants"); the defaults are BitNet b1.58.
    weight_scale: str = "tensor"  # tensor | channel (one per output row) | group
    weight_group_size: int = 128  # weight_scale=group: input columns sharing one scale
    weight_estimator: str = "absmean"  # absmean | absmedian
    act_bits: int = 8  # 8 | 4 (per-token absmax)
    hadamard_modules: list[str] = field(default_factory=list)  # globs: online Hadamard first


@dataclass
class DistillConfig:
    """Knowledge distillation from a full-precision teacher; file: ``conf/distill/*.yaml``."""

    method: str = "none"  # none | kd (conf/distill/kl.yaml, bitdistill.yaml)
    teacher: str | None = None  # method=kd: a run folder, a checkpoint folder or a Hub id
    temperature: float = 1.0
    ce_weight: float = 1.0  # the usual next-token cross-entropy
    kl_weight: float = 1.0  # T² · KL(teacher ‖ student) of the softened logits
    hidden_weight: float = 0.0  # MSE of the hidden states of `layers`
    attn_weight: float = 0.0  # BitDistill/MiniLM Q·Q, K·K, V·V relation KL at `layers`
    layers: list[int] = field(default_factory=lambda: [-1])  # decoder layers (negative: from end)
    relation_heads: int | None = None  # attention relation heads; None: the student's heads


@dataclass
class ArithConfig:
    """The embedded procedural data set (``train/arith_data.py``)."""

    num_examples: int = 20000
    seed: int = 1234
    max_value: int = 50


@dataclass
class DataConfig:
    """Text source, tokenizer and packing; file: ``conf/data/*.yaml``."""

    name: str = "arith"
    source: str = "arith"  # arith | file | hub
    path: str | None = None  # local file (source=file); relative to the working directory
    format: str | None = None  # text | json | parquet; None: from the file extension
    text_field: str = "text"
    template: str | None = None  # e.g. "Question: {question}\nAnswer: {answer}" for JSONL rows
    sample_by: str = "document"  # text files: line | paragraph | document
    hub_name: str | None = None
    hub_config: str | None = None
    hub_split: str = "train"
    hub_revision: str | None = None
    arith: ArithConfig = field(default_factory=ArithConfig)
    seq_len: int = 64
    val_fraction: float = 0.05
    tokenizer: str | None = None  # a transformers tokenizer folder; None: train a byte-level BPE
    vocab_size: int = 512  # size of the trained BPE
    cache_dir: str = ".cache/ternlab"


@dataclass
class OptimConfig:
    """AdamW and the learning-rate / weight-decay schedule; file: ``conf/optim/*.yaml``."""

    schedule: str = "two_stage"  # two_stage (BitNet 2B4T) | cosine | constant
    lr: float = 1.5e-3  # peak learning rate
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1  # final lr / peak lr (cosine; end of each two_stage stage)
    stage2_start: float = 0.5  # two_stage: fraction of max_steps where the cooldown begins
    stage2_lr_ratio: float = 0.3  # two_stage: stage-2 starting lr / peak lr
    weight_decay: float = 0.1  # stage 1 (and cosine/constant)
    stage2_weight_decay: float = 0.0  # two_stage: weight decay of the cooldown
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping


@dataclass
class TrainerConfig:
    """Loop, precision, checkpoints; file: ``conf/trainer/*.yaml``."""

    max_steps: int = 1000
    batch_size: int = 16  # sequences per process per micro-step
    grad_accum: int = 1
    mixed_precision: str = "no"  # no | bf16 | fp16 (accelerate autocast)
    cpu: bool = False  # force CPU even where a GPU is present
    dist_timeout_s: int = 1800  # multi-process: a peer silent this long is an error, not a hang
    seed: int = 0
    output_dir: str = "runs/default"
    log_every: int = 10
    eval_every: int = 100
    eval_batches: int = 8
    save_every: int = 200
    keep_last: int = 2  # checkpoints kept (the latest is never deleted)
    resume: bool = False
    progress: bool = True
    plot: bool = True
    debug_nan_at_step: int | None = None  # debug only: make the loss NaN at this step
    exact_match_examples: int = 0  # data=arith: greedy exact match on held-out problems at the end


@dataclass
class TrackingConfig:
    """Weights & Biases; file: ``conf/tracking/*.yaml``."""

    mode: str = "offline"  # online | offline | disabled
    project: str = "ternlab"
    entity: str | None = None
    name: str | None = None  # None: the run name
    tags: list[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    """The root of ``conf/config.yaml``."""

    run_name: str = "run"
    model: ModelConfig = field(default_factory=ModelConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)


class ConfigError(ValueError):
    """A config value is invalid; the message names the key, its group file and the fix."""


def register_configs(cs: ConfigStore | None = None) -> None:
    """Register the root schema with Hydra's ConfigStore (idempotent)."""
    (cs or ConfigStore.instance()).store(name=SCHEMA_NAME, node=TrainConfig)


def _choice(key: str, value: Any, allowed: tuple[str, ...], group: str) -> None:
    if value not in allowed:
        raise ConfigError(
            f"`{key}` = {value!r} is not one of {list(allowed)} "
            f"(set it in conf/{group}/*.yaml or override `{key}=...`)"
        )


def _positive(key: str, value: Any, group: str, allow_zero: bool = False) -> None:
    if value is None or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"`{key}` must be {bound}, got {value!r} (conf/{group}/*.yaml)")


def validate(cfg: TrainConfig) -> None:
    """Check values the schema's types cannot; raises :class:`ConfigError`."""
    m, d, o, t = cfg.model, cfg.data, cfg.optim, cfg.trainer
    _choice("model.hidden_act", m.hidden_act, HIDDEN_ACTS, "model")
    _choice("quant.method", cfg.quant.method, QUANT_METHODS, "quant")
    _choice("data.source", d.source, DATA_SOURCES, "data")
    _choice("optim.schedule", o.schedule, SCHEDULES, "optim")
    _choice("trainer.mixed_precision", t.mixed_precision, PRECISIONS, "trainer")
    _choice("tracking.mode", cfg.tracking.mode, WANDB_MODES, "tracking")
    _validate_quant(cfg.quant, m)
    _validate_distill(cfg.distill)
    if d.format is not None:
        _choice("data.format", d.format, FILE_FORMATS, "data")
    for key, val, grp in [
        ("model.hidden_size", m.hidden_size, "model"),
        ("model.num_hidden_layers", m.num_hidden_layers, "model"),
        ("data.seq_len", d.seq_len, "data"),
        ("trainer.max_steps", t.max_steps, "trainer"),
        ("trainer.batch_size", t.batch_size, "trainer"),
        ("trainer.grad_accum", t.grad_accum, "trainer"),
        ("optim.lr", o.lr, "optim"),
        ("trainer.log_every", t.log_every, "trainer"),
        ("trainer.eval_every", t.eval_every, "trainer"),
        ("trainer.eval_batches", t.eval_batches, "trainer"),
        ("trainer.save_every", t.save_every, "trainer"),
        ("trainer.keep_last", t.keep_last, "trainer"),
        ("trainer.dist_timeout_s", t.dist_timeout_s, "trainer"),
        ("data.vocab_size", d.vocab_size, "data"),
    ]:
        _positive(key, val, grp)
    if m.hidden_size % m.num_attention_heads or m.num_attention_heads % m.num_key_value_heads:
        raise ConfigError(
            "`model.hidden_size` must be divisible by `model.num_attention_heads`, and that by "
            f"`model.num_key_value_heads` (got {m.hidden_size}, {m.num_attention_heads}, "
            f"{m.num_key_value_heads}; conf/model/{m.name}.yaml)"
        )
    if not 0.0 < d.val_fraction < 1.0:
        raise ConfigError(f"`data.val_fraction` must be in (0, 1), got {d.val_fraction}")
    if not 0.0 < o.stage2_start < 1.0:
        raise ConfigError(f"`optim.stage2_start` must be in (0, 1), got {o.stage2_start}")
    if d.seq_len > m.max_position_embeddings:
        raise ConfigError(
            f"`data.seq_len` ({d.seq_len}) exceeds `model.max_position_embeddings` "
            f"({m.max_position_embeddings}); lower data.seq_len or raise the model's limit"
        )


def _validate_quant(q: QuantConfig, m: ModelConfig) -> None:
    _choice("quant.weight_scale", q.weight_scale, WEIGHT_SCALES, "quant")
    _choice("quant.weight_estimator", q.weight_estimator, WEIGHT_ESTIMATORS, "quant")
    if q.act_bits not in ACT_BITS:
        raise ConfigError(
            f"`quant.act_bits` = {q.act_bits!r} is not one of {list(ACT_BITS)} (conf/quant/*.yaml)"
        )
    _positive("quant.weight_group_size", q.weight_group_size, "quant")
    if q.weight_scale == "group":
        for key, n in (("hidden_size", m.hidden_size), ("intermediate_size", m.intermediate_size)):
            if n % q.weight_group_size:
                raise ConfigError(
                    f"`quant.weight_group_size` ({q.weight_group_size}) must divide "
                    f"`model.{key}` ({n}); choose a divisor (conf/quant/*.yaml)"
                )
    if q.hadamard_modules:
        for key, n in (("hidden_size", m.hidden_size), ("intermediate_size", m.intermediate_size)):
            if n & (n - 1):
                raise ConfigError(
                    f"`quant.hadamard_modules` needs power-of-two input sizes, but "
                    f"`model.{key}` = {n}; clear quant.hadamard_modules or change the model"
                )


def _validate_distill(d: DistillConfig) -> None:
    _choice("distill.method", d.method, DISTILL_METHODS, "distill")
    if d.method == "none":
        if d.teacher is not None:
            raise ConfigError(
                "`distill.teacher` is set but distillation is off (distill.method=none); "
                "pick a preset: distill=kl or distill=bitdistill"
            )
        return
    if not d.teacher:
        raise ConfigError(
            f"`distill.teacher` must be set for distill.method={d.method}: "
            "distill.teacher=runs/<the FP twin run> (a run folder, checkpoint folder or Hub id)"
        )
    _positive("distill.temperature", d.temperature, "distill")
    for key in ("ce_weight", "kl_weight", "hidden_weight", "attn_weight"):
        _positive(f"distill.{key}", getattr(d, key), "distill", allow_zero=True)
    if (d.hidden_weight > 0 or d.attn_weight > 0) and not d.layers:
        raise ConfigError("`distill.layers` is empty but a hidden/attention weight is set")


def to_dataclass(cfg: DictConfig | TrainConfig) -> TrainConfig:
    """Resolve a composed Hydra config into a validated :class:`TrainConfig`."""
    if isinstance(cfg, TrainConfig):
        out = cfg
    else:
        # A `???` in a preset (e.g. conf/distill/kl.yaml's teacher) must be set; merging
        # into the schema would otherwise keep the schema's default silently.
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise ConfigError(
                f"`{missing[0]}` must be set (it is ??? in its conf/ file); override "
                f"`{missing[0]}=...` on the command line"
            )
        out = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), cfg))
    validate(out)
    return out


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain nested dict (for wandb, checkpoints and JSON)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]
