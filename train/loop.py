"""The training loop: one function, :func:`train`, from a :class:`TrainConfig` to checkpoints.

Launch-agnostic through ``accelerate``: one CPU process here, DDP or FSDP when
started with ``accelerate launch`` (or ``torchrun``), without code changes. The
data order is a pure function of the step (``data.micro_batch_rows``), so the
same global batch gives the same run on any number of processes and a resumed
run reads exactly what an uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, set_seed

from ternlab.bitlinear import QuantStrengthSchedule, set_quant_strength
from ternlab.train.checkpoint import (
    install_state_hooks,
    latest_checkpoint,
    load_checkpoint,
    read_trainer_state,
    save_checkpoint,
)
from ternlab.train.config import TrainConfig, to_dict
from ternlab.train.data import (
    PackedSplits,
    build_tokenizer,
    micro_batch_rows,
    prepare_data,
    target_bytes,
)
from ternlab.train.distill import Distiller, load_teacher
from ternlab.train.model import build_model, count_parameters
from ternlab.train.optim import apply_weight_decay, build_optimizer, build_scheduler
from ternlab.train.plot import plot_losses
from ternlab.train.preempt import StopSignals
from ternlab.train.tracking import MetricsFile, WandbRun, make_progress

log = logging.getLogger(__name__)

#: Config groups a resumed run must share with its checkpoint (the rest, e.g.
#: trainer.max_steps or tracking, may change between attempts).
_RESUME_MUST_MATCH = ("model", "quant", "data")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the message names the step and the last good checkpoint."""


@dataclass
class TrainResult:
    """What a finished run produced."""

    output_dir: Path
    steps: int
    checkpoint: Path | None
    train_loss: float
    val_loss: float
    history: list[float] = field(default_factory=list)
    is_main: bool = True  # False on the other processes of a distributed run
    val_bpb: float = float("nan")  # held-out bits per byte of the last evaluation
    stopped_by: str | None = None  # "SIGTERM"/"SIGINT": stopped early, checkpoint saved


@dataclass
class _Run:
    cfg: TrainConfig
    acc: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    tokenizer: object
    data: PackedSplits
    out: Path
    lam: QuantStrengthSchedule | None
    step: int = 0  # optimizer steps done
    last_ckpt: Path | None = None
    lr: float = 0.0
    distill: Distiller | None = None
    eval_counts: tuple[int, int] | None = None  # (target tokens, their bytes) of the eval rows


def _accelerator(cfg: TrainConfig) -> Accelerator:
    # The scheduler is a function of the optimizer step; accelerate must not step it
    # once per process (its default), or lr would depend on the number of processes.
    return Accelerator(
        cpu=cfg.trainer.cpu,
        mixed_precision=cfg.trainer.mixed_precision,
        step_scheduler_with_optimizer=False,
        kwargs_handlers=[
            InitProcessGroupKwargs(timeout=timedelta(seconds=cfg.trainer.dist_timeout_s))
        ],
    )


def _setup(cfg: TrainConfig) -> _Run:
    acc = _accelerator(cfg)
    set_seed(cfg.trainer.seed)
    with acc.main_process_first():  # rank 0 trains the tokenizer and fills the cache
        tokenizer = build_tokenizer(cfg.data)
        data = prepare_data(cfg.data, tokenizer)
    model = build_model(cfg.model, cfg.quant, tokenizer)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.trainer.max_steps)
    model, optimizer, scheduler = acc.prepare(model, optimizer, scheduler)
    install_state_hooks(acc)
    lam = None
    if cfg.quant.method == "ternary":
        lam = QuantStrengthSchedule(cfg.quant.warmup_steps, cfg.quant.start)
    run = _Run(
        cfg, acc, model, optimizer, scheduler, tokenizer, data, Path(cfg.trainer.output_dir), lam
    )
    if cfg.distill.method != "none":
        student = acc.unwrap_model(model)
        teacher = load_teacher(cfg.distill, student.config.vocab_size, acc.device)
        run.distill = Distiller(cfg.distill, teacher, student.config.num_attention_heads)
    return run


def _check_resumable(run: _Run, meta: dict, ckpt: Path) -> None:
    saved, now = meta.get("config", {}), to_dict(run.cfg)
    for cfg in (saved, now):  # where the cache lives does not change the data
        cfg.get("data", {}).pop("cache_dir", None)
    for group in _RESUME_MUST_MATCH:
        if saved.get(group) != now[group]:
            raise ValueError(
                f"trainer.resume: checkpoint {ckpt} was trained with a different `{group}` "
                f"config ({saved.get(group)} vs {now[group]}); resume with the same "
                f"{group}.* settings or start a new trainer.output_dir"
            )


def _maybe_resume(run: _Run) -> None:
    ckpt = latest_checkpoint(run.out)
    if not run.cfg.trainer.resume:
        if ckpt is not None:
            raise FileExistsError(
                f"trainer.output_dir={str(run.out)!r} already holds checkpoints "
                f"(latest {ckpt.name}); pass trainer.resume=true to continue it, "
                "or choose a new trainer.output_dir"
            )
        return
    if ckpt is None:
        log.info("trainer.resume=true but %s has no checkpoint yet: starting fresh", run.out)
        return
    _check_resumable(run, read_trainer_state(ckpt), ckpt)
    meta = load_checkpoint(run.acc, run.model, ckpt)
    run.step, run.last_ckpt = int(meta["step"]), ckpt
    log.info("resumed from %s (step %d)", ckpt, run.step)


def _batch(run: _Run, split: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(split[np.sort(rows)].astype(np.int64)).to(run.acc.device)


def _forward_loss(run: _Run, x: torch.Tensor) -> torch.Tensor:
    return run.model(input_ids=x, labels=x, use_cache=False).loss


def _train_loss(run: _Run, x: torch.Tensor) -> torch.Tensor:
    if run.distill is not None:
        return run.distill.loss(run.model, x)
    return _forward_loss(run, x)


def _accumulate_gradients(run: _Run) -> float:
    """Forward/backward every micro-batch of this step; returns the loss averaged over processes."""
    acc, t = run.acc, run.cfg.trainer
    total = torch.zeros((), device=acc.device)
    for micro in range(t.grad_accum):
        rows = micro_batch_rows(
            run.step,
            micro,
            acc.process_index,
            world=acc.num_processes,
            batch_size=t.batch_size,
            grad_accum=t.grad_accum,
            n=len(run.data.train),
            seed=t.seed,
        )
        # Gradients are all-reduced once, on the last micro-batch.
        sync = nullcontext() if micro == t.grad_accum - 1 else acc.no_sync(run.model)
        with sync:
            loss = _train_loss(run, _batch(run, run.data.train, rows)) / t.grad_accum
            if t.debug_nan_at_step == run.step + 1:
                loss = loss * float("nan")
            acc.backward(loss)
        total += loss.detach().float()
    return float(acc.reduce(total, reduction="mean"))


def _train_step(run: _Run) -> tuple[float, float]:
    """One optimizer step (with accumulation); returns (mean loss over processes, grad norm)."""
    cfg = run.cfg
    run.model.train()
    if run.lam is not None:
        set_quant_strength(run.acc.unwrap_model(run.model), run.lam(run.step))
    apply_weight_decay(run.optimizer, cfg.optim, run.step, cfg.trainer.max_steps)
    mean_loss = _accumulate_gradients(run)
    if not math.isfinite(mean_loss):  # checked before the update: weights stay good
        raise NonFiniteLossError(_nan_message(run, mean_loss))
    grad_norm = float("nan")
    if cfg.optim.grad_clip > 0:
        grad_norm = float(run.acc.clip_grad_norm_(run.model.parameters(), cfg.optim.grad_clip))
    run.lr = run.optimizer.param_groups[0]["lr"]  # the lr this update used
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    return mean_loss, grad_norm


def _nan_message(run: _Run, loss: float) -> str:
    where = (
        f"the last good checkpoint is {run.last_ckpt}"
        if run.last_ckpt
        else "no checkpoint had been saved yet"
    )
    return (
        f"loss is {loss} at step {run.step + 1}: training stopped before the optimizer "
        f"update; {where}. Lower optim.lr, check the data, then continue with "
        f"trainer.resume=true"
    )


def _eval_rows(run: _Run, i: int) -> np.ndarray:
    t, acc = run.cfg.trainer, run.acc
    start = (i * acc.num_processes + acc.process_index) * t.batch_size
    return np.arange(start, start + t.batch_size) % len(run.data.val)


@torch.no_grad()
def evaluate(run: _Run) -> float:
    """Mean validation loss over ``trainer.eval_batches`` batches (shared across processes)."""
    t, acc, val = run.cfg.trainer, run.acc, run.data.val
    run.model.eval()
    losses = []
    for i in range(t.eval_batches):
        losses.append(_forward_loss(run, _batch(run, val, _eval_rows(run, i))).float())
    run.model.train()
    return float(acc.reduce(torch.stack(losses).mean(), reduction="mean"))


def bits_per_byte(run: _Run, val_loss: float) -> float:
    """Held-out bits per byte: ``val_loss`` (nats/token) × target tokens / their bytes / ln 2.

    The counts cover exactly the rows :func:`evaluate` scores (every process's), so the
    figure compares models with different tokenizers on the same text.
    """
    if run.eval_counts is None:
        n_tok = n_bytes = 0
        for i in range(run.cfg.trainer.eval_batches):
            rows = run.data.val[np.sort(_eval_rows(run, i))]
            n_tok += rows.shape[0] * (rows.shape[1] - 1)  # every position but the first is a target
            n_bytes += target_bytes(rows, run.tokenizer)
        counts = torch.tensor([n_tok, n_bytes], dtype=torch.float64, device=run.acc.device)
        counts = run.acc.reduce(counts, reduction="sum")
        run.eval_counts = (int(counts[0]), int(counts[1]))
    n_tok, n_bytes = run.eval_counts
    return val_loss * n_tok / max(n_bytes, 1) / math.log(2)


def _save(run: _Run, loss: float) -> None:
    lam = run.lam(run.step) if run.lam is not None else None
    meta = {"train_loss": loss, "quant_strength": lam, "config": to_dict(run.cfg)}
    run.last_ckpt = save_checkpoint(
        run.acc, run.model, run.tokenizer, run.out, run.step, meta, run.cfg.trainer.keep_last
    )


def _describe(run: _Run) -> str:
    t, world = run.cfg.trainer, run.acc.num_processes
    gb = t.batch_size * world * t.grad_accum
    return (
        f"{run.cfg.run_name}: {count_parameters(run.model) / 1e6:.2f}M parameters, "
        f"quant={run.cfg.quant.method}, {len(run.data.train)} train / {len(run.data.val)} val "
        f"sequences of {run.cfg.data.seq_len} tokens, global batch {gb} on {world} process(es), "
        f"output {run.out}"
    )


def _release_accelerator() -> None:
    # accelerate keeps its settings (mixed precision, ...) in process-wide singletons;
    # clearing them lets a later train() in the same process (notebooks, tests) use
    # other settings. The process group (PartialState) is kept.
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) the training described by ``cfg``; returns its :class:`TrainResult`."""
    try:
        return _train(cfg)
    finally:
        _release_accelerator()


def _train(cfg: TrainConfig) -> TrainResult:
    run = _setup(cfg)
    _maybe_resume(run)
    main = run.acc.is_main_process
    metrics = MetricsFile(run.out, run.step if cfg.trainer.resume else None) if main else None
    wb = (
        WandbRun(cfg.tracking, cfg.run_name, run.out, to_dict(cfg), cfg.trainer.resume)
        if main
        else None
    )
    if main:
        log.info(_describe(run))
    try:
        with StopSignals() as stop:
            result = _loop(run, metrics, wb, stop)
    except NonFiniteLossError as e:
        if metrics is not None:
            metrics.log({"step": run.step + 1, "error": str(e)})
        if wb is not None:
            wb.finish(exit_code=1)
        raise
    if (
        cfg.trainer.exact_match_examples > 0
        and cfg.data.source == "arith"
        and result.stopped_by is None
        and main
    ):
        from ternlab.train.exact_match import arith_exact_match

        em = arith_exact_match(run.acc.unwrap_model(run.model), run.tokenizer, cfg)
        _emit(metrics, wb, {"step": run.step, **em})
    if wb is not None:
        wb.finish()
    if main and cfg.trainer.plot and metrics is not None:
        plot_losses(metrics.path, run.out / "loss.png", cfg.run_name)
    _end_training(run)
    return result


def _end_training(run: _Run) -> None:
    # A DDP model's reducer holds the gloo process group. Freed after
    # destroy_process_group, it is the group's last owner, and the group's destructor
    # joins a worker thread that waits for the GIL the freeing thread holds: the
    # process never exits (seen in the 2-process test, about 1 run in 10). Freed
    # first, while the group is still registered, the reducer is not its last owner.
    run.model = run.optimizer = run.scheduler = None  # type: ignore[assignment]
    run.acc.free_memory()  # accelerate's own references to the prepared objects; gc
    run.acc.end_training()


def _log_record(run: _Run, losses: list[float], grad_norm: float, tps: float) -> dict:
    return {
        "step": run.step,
        "loss": sum(losses) / len(losses),
        "lr": run.lr,
        "weight_decay": run.optimizer.param_groups[0]["weight_decay"],
        "quant_strength": run.lam(run.step - 1) if run.lam is not None else None,
        "grad_norm": grad_norm,
        "tokens": run.step * _tokens_per_step(run),
        "tokens_per_s": tps,
    }


def _tokens_per_step(run: _Run) -> int:
    t = run.cfg.trainer
    return t.batch_size * run.acc.num_processes * t.grad_accum * run.cfg.data.seq_len


def _emit(metrics: MetricsFile | None, wb: WandbRun | None, record: dict) -> None:
    if metrics is not None:
        metrics.log(record)
    if wb is not None:
        wb.log(record, step=record["step"])


def _loop(
    run: _Run, metrics: MetricsFile | None, wb: WandbRun | None, stop: StopSignals
) -> TrainResult:
    t = run.cfg.trainer
    history: list[float] = []
    window: list[float] = []
    loss = val = bpb = float("nan")
    stopped_by = None
    tick, tick_step = time.perf_counter(), run.step
    with make_progress(t.progress and run.acc.is_main_process) as bar:
        task = bar.add_task(
            "train", total=t.max_steps, completed=run.step, loss="-", tps="-", lr="-"
        )
        while run.step < t.max_steps:
            loss, grad_norm = _train_step(run)
            history.append(loss)
            window.append(loss)
            if run.step % t.log_every == 0 or run.step == t.max_steps:
                now = time.perf_counter()
                tps = (run.step - tick_step) * _tokens_per_step(run) / max(now - tick, 1e-9)
                record = _log_record(run, window, grad_norm, tps)
                _emit(metrics, wb, record)
                bar.update(
                    task, loss=f"{record['loss']:.3f}", tps=f"{tps:,.0f}", lr=f"{record['lr']:.2e}"
                )
                window, tick, tick_step = [], now, run.step
            bar.update(task, completed=run.step)
            if run.step % t.eval_every == 0 or run.step == t.max_steps:
                val = evaluate(run)
                bpb = bits_per_byte(run, val)
                _emit(metrics, wb, {"step": run.step, "val_loss": val, "val_bpb": bpb})
            saved = run.step % t.save_every == 0 or run.step == t.max_steps
            if saved:
                _save(run, loss)
            stopped_by = stop.agreed(run.acc)  # at the step boundary, on every process
            if stopped_by is not None:
                if not saved:
                    _save(run, loss)
                _emit(metrics, wb, {"step": run.step, "stopped_by": stopped_by})
                log.warning(
                    "%s: stopped at step %d, checkpoint %s; continue with trainer.resume=true",
                    stopped_by,
                    run.step,
                    run.last_ckpt,
                )
                break
    return TrainResult(
        run.out,
        run.step,
        run.last_ckpt,
        loss,
        val,
        history,
        run.acc.is_main_process,
        val_bpb=bpb,
        stopped_by=stopped_by,
    )
