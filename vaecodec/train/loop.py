"""The training loop: rate + lambda * distortion over random crops, one model for all rates.

Every batch draws a continuous rate level per crop, so each step trains the whole rate range.
Checkpoints (model, optimizer, step, elapsed time) are written every few minutes and on exit; a
CSV log records the loss terms, the throughput and the periodic validation results.

With bf16 (``--precision``, native on the device), the networks run under bf16 autocast on
channels-last activations, while the weights, Adam's state, the likelihoods and the loss stay fp32
(``HyperpriorModel.forward``): measured on this project's 2-core CPU, a step of batch 8 of 256²
crops took 0.64 s against 1.2 s in fp32.
"""

from __future__ import annotations

import csv
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from vaecodec.allocator import keep_freed_memory
from vaecodec.errors import VaecodecError
from vaecodec.model.grow import widen, with_context
from vaecodec.model.hyperprior import MS_SSIM_LAMBDAS, HyperpriorModel, ModelConfig
from vaecodec.model.precision import autocast, resolve_precision
from vaecodec.model.weights import load_weights, save_weights
from vaecodec.train.data import CropSampler, DeviceCropSampler, split_images


@dataclass
class TrainSettings:
    data: Path
    out: Path
    steps: int = 100_000
    batch: int = 8
    crop: int = 128
    lr: float = 5e-4
    lr_final: float = 5e-5
    decay_start: float = 0.8  # fraction of the run after which the learning rate decays (cosine)
    minutes: float = 0.0  # when set, run this long instead of up to `steps`; the schedule follows time
    channels: int | None = None  # N of a new model (default 96); with init_weights, a larger N widens them
    latent_channels: int | None = None  # M of a new model (default 144); with init_weights, a larger M widens them
    context_groups: tuple[int, ...] | None = None  # when set, channel-conditional context groups (adds them to init_weights)
    context_channels: int = 64  # width of the context groups' networks
    context_lr_factor: float = 1.0  # the context networks' learning rate as a multiple of the transforms'
    lambdas: tuple[float, ...] | None = None  # when set, the rate levels' trade-offs (ascending)
    distortion: str | None = None  # when set and not the start's, fine-tune toward it (DISTORTIONS)
    lowest_level: float | None = None  # when set, the rate level of quality 0
    level_tilt: float = 0.0  # 0 draws rate levels uniformly; up to 1 favours the top (see sample_levels)
    device: str = "auto"
    precision: str = "auto"  # fp32, bf16, or auto: bf16 where the device runs it natively
    clean_weight: float = 1.0  # crops drawn from lossless (non-JPEG) photos, per pixel, relative to JPEG ones
    crops_on_device: bool = False  # hold the photos on the device and cut the crops there (DeviceCropSampler)
    resume: bool = False
    init_weights: Path | None = None
    checkpoint_minutes: float = 5.0
    eval_every: int = 2000
    eval_images: int = 8
    threads: int = 0
    seed: int = 0
    export: Path | None = None


def sample_levels(count: int, lowest: float, highest: float, tilt: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Rate levels for a batch, drawn with a density that rises linearly from 1 - tilt to 1 + tilt.

    A tilt above 0 spends more steps on the high rates, where a small model falls behind first,
    without leaving the low end untrained.
    """
    u = torch.rand(count, device=device)
    if tilt == 0:
        fraction = u
    else:  # inverse of the CDF (1 - tilt) t + tilt t^2
        fraction = (torch.sqrt((1 - tilt) ** 2 + 4 * tilt * u) - (1 - tilt)) / (2 * tilt)
    return lowest + fraction * (highest - lowest)


def rate_distortion_loss(out: dict[str, torch.Tensor], x: torch.Tensor, lambdas: torch.Tensor,
                         distortion: str = "mse") -> dict[str, torch.Tensor]:
    """Batch loss terms from a training pass: rate in bits per pixel, MSE on the 0-255 scale, and
    with ``distortion="ms-ssim"`` the MS-SSIM that the lambdas then weigh (as 1 - MS-SSIM).

    MS-SSIM comes from pytorch-msssim (5 scales, so crops need more than 160 pixels a side), in
    fp32 outside any autocast.
    """
    pixels = x.shape[2] * x.shape[3]
    bits = -(out["y_likelihoods"].log2().sum(dim=(1, 2, 3)) + out["z_likelihoods"].log2().sum(dim=(1, 2, 3)))
    bpp = bits / pixels
    mse = (out["x_hat"] - x).square().mean(dim=(1, 2, 3)) * 255**2
    if distortion == "mse":
        return {"loss": (bpp + lambdas * mse).mean(), "bpp": bpp.mean(), "mse": mse.mean()}
    from pytorch_msssim import ms_ssim

    with torch.autocast(x.device.type, enabled=False):
        similarity = ms_ssim(out["x_hat"].float(), x.float(), data_range=1.0, size_average=False)
    return {"loss": (bpp + lambdas * (1 - similarity)).mean(), "bpp": bpp.mean(), "mse": mse.mean(),
            "ms_ssim": similarity.mean()}


def learning_rate(settings: TrainSettings, progress: float) -> float:
    """Constant, then a cosine decay to ``lr_final``; ``progress`` is the fraction of the run done."""
    if progress < settings.decay_start:
        return settings.lr
    decayed = min(1.0, (progress - settings.decay_start) / max(1e-9, 1 - settings.decay_start))
    return settings.lr_final + 0.5 * (settings.lr - settings.lr_final) * (1 + math.cos(math.pi * decayed))


def parameter_groups(model: HyperpriorModel, context_lr_factor: float) -> list[tuple[list[torch.nn.Parameter], float]]:
    """Adam's parameter groups, each with its factor on the learning rate: the context networks
    apart, so they can learn faster.

    A context added to trained weights starts at zero; at a learning rate low enough to keep the
    annealed transforms where they are, it would barely move without a factor of its own.
    """
    context = list(model.context.parameters()) if model.config.context_groups else []
    own = {id(p) for p in context}
    groups = [([p for p in model.parameters() if id(p) not in own], 1.0)]
    if context:
        groups.append((context, context_lr_factor))
    return groups


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank() if world > 1 else 0), world


def _stop_on_sigterm() -> None:
    """Let ``kill`` end training like Ctrl-C does: through the final checkpoint."""

    def stop(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def train(settings: TrainSettings, log=print) -> HyperpriorModel:
    """Run (or resume) training; returns the trained model."""
    from vaecodec.train.evaluate import evaluate_model  # uses the codec, which imports the model

    if settings.context_lr_factor <= 0:
        raise VaecodecError(f"--context-lr-factor must be above 0, not {settings.context_lr_factor:g}")
    if not 0 <= settings.level_tilt <= 1:
        raise VaecodecError(f"--level-tilt must lie between 0 and 1, not {settings.level_tilt:g}")
    rank, world = _distributed()
    _stop_on_sigterm()
    keep_freed_memory(1 << 30)  # a training process is ours: keep every batch's activations for the next
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = _pick_device(settings.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop shapes: let cuDNN pick its fastest kernels
    dtype = resolve_precision(settings.precision, device)
    layout = torch.channels_last if dtype == torch.bfloat16 else torch.contiguous_format
    torch.manual_seed(settings.seed + rank)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / "checkpoint.pt"

    optimizer_state = None  # Adam starts afresh unless the run resumes
    step, elapsed = 0, 0.0
    schedule_start = 0  # the step a --steps schedule runs from: 0, or where --init-weights left off
    resumed = settings.resume and checkpoint_path.exists()
    if resumed:
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        model = HyperpriorModel(ModelConfig.from_dict(state["config"]))
        model.load_state_dict(state["model"])
        optimizer_state = state["optimizer"]
        step, elapsed = int(state["step"]), float(state["elapsed"])
        schedule_start = int(state.get("schedule_start", 0))
        log(f"resumed from {checkpoint_path} at step {step} ({elapsed / 3600:.2f} h)")
    elif settings.init_weights is not None:
        shipped = load_weights(settings.init_weights)
        model = shipped.model.train()
        # Continue the campaign's step count so the schedule and the log carry on.
        step = schedule_start = int(shipped.metadata.get("steps", 0))
        elapsed = float(shipped.metadata.get("hours", 0.0)) * 3600
        log(f"initialised from {settings.init_weights} (step {step})")
        channels = settings.channels or model.config.channels
        latent_channels = settings.latent_channels or model.config.latent_channels
        if (channels, latent_channels) != (model.config.channels, model.config.latent_channels):
            model = widen(model, channels, latent_channels, seed=settings.seed).train()
            log(f"widened to {channels} transform channels, {latent_channels} latent channels")
        if settings.context_groups and tuple(settings.context_groups) != model.config.context_groups:
            model = with_context(model, tuple(settings.context_groups), settings.context_channels).train()
            log(f"context groups {','.join(map(str, settings.context_groups))} added")
    else:
        model = HyperpriorModel(ModelConfig(settings.channels or 96, settings.latent_channels or 144,
                                            context_groups=tuple(settings.context_groups or ()),
                                            context_channels=settings.context_channels))
    if settings.distortion is not None and settings.distortion != model.config.distortion:
        if resumed:
            raise VaecodecError("--distortion starts a new run; a resumed run keeps its own")
        if settings.distortion == "ms-ssim" and settings.lambdas is None and model.levels != len(MS_SSIM_LAMBDAS):
            raise VaecodecError(f"--distortion ms-ssim on {model.levels} rate levels needs --lambdas, one per level")
        model = model.for_distortion(settings.distortion, settings.lambdas or MS_SSIM_LAMBDAS)
        log(f"distortion {settings.distortion}: lambdas {', '.join(f'{v:g}' for v in model.config.lambdas)}")
    elif settings.lambdas is not None or settings.lowest_level is not None:
        if resumed:
            raise VaecodecError("--lambdas and --lowest-level start a new run; a resumed run keeps its own")
        lambdas = settings.lambdas or model.config.lambdas
        if len(lambdas) < 2 or lambdas[0] <= 0 or any(a >= b for a, b in zip(lambdas, lambdas[1:])):
            raise VaecodecError("--lambdas: give two or more positive values in ascending order")
        lowest = model.config.lowest_level_hundredths if settings.lowest_level is None else round(settings.lowest_level * 100)
        if lowest >= (len(lambdas) - 1) * 100:
            raise VaecodecError(f"--lowest-level must lie below the top rate level, {len(lambdas) - 1}")
        model = model.with_rate_levels(lambdas, lowest)
        log(f"rate levels: lambdas {', '.join(f'{v:g}' for v in model.config.lambdas)}, quality 0 at level {model.lowest_level:g}")
    groups = parameter_groups(model, settings.context_lr_factor)
    lr_factors = [factor for _, factor in groups]  # this run's, whatever a checkpoint's were
    optimizer = torch.optim.Adam([{"params": params} for params, _ in groups], lr=settings.lr)
    if optimizer_state is not None:
        if len(optimizer_state["param_groups"]) != len(optimizer.param_groups):
            raise VaecodecError(f"{checkpoint_path} was trained with another set of parameter groups; start a new run")
        optimizer.load_state_dict(optimizer_state)
    model.to(device, memory_format=layout)
    for group in optimizer.state.values():
        for k, v in group.items():
            if torch.is_tensor(v):
                group[k] = v.to(device)
    trained = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    train_paths, val_paths = split_images(settings.data)
    if settings.minutes or step < settings.steps:
        seed = settings.seed + 1000 * rank + step
        if settings.crops_on_device:
            sampler = DeviceCropSampler(train_paths, settings.crop, seed=seed, clean_weight=settings.clean_weight,
                                        device=device, memory_format=layout)
        else:
            sampler = CropSampler(train_paths, settings.crop, seed=seed, clean_weight=settings.clean_weight)
        log(f"{len(train_paths)} training / {len(val_paths)} validation photos, device {device}, world {world}, "
            f"{str(dtype).removeprefix('torch.')}{', crops cut on the device' if settings.crops_on_device else ''}")

    first_step = step
    run_started = time.monotonic()

    def progress() -> float:
        if settings.minutes:
            return (time.monotonic() - run_started) / (settings.minutes * 60)
        return 1.0 if step >= settings.steps else (step - schedule_start) / (settings.steps - schedule_start)

    def save_checkpoint() -> None:
        if rank != 0 or step == first_step:
            return
        state = {
            "config": model.config.to_dict(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "step": step, "elapsed": elapsed, "schedule_start": schedule_start,
        }
        torch.save(state, checkpoint_path.with_suffix(".tmp"))
        checkpoint_path.with_suffix(".tmp").replace(checkpoint_path)

    log_file = out / "log.csv"
    new_log = not log_file.exists()
    with open(log_file, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new_log and rank == 0:
            writer.writerow(["step", "hours", "lr", "loss", "bpp", "mse", "eval_bpp", "eval_psnr", "crops_per_s",
                             "ms_ssim"])
        last_checkpoint = time.monotonic()
        running = dict.fromkeys(("loss", "bpp", "mse", *(("ms_ssim",) if model.config.distortion == "ms-ssim" else ())), 0.0)
        count, busy = 0, 0.0
        try:
            while (done := progress()) < 1:
                started = time.monotonic()
                lr = learning_rate(settings, done)
                for group, factor in zip(optimizer.param_groups, lr_factors):
                    group["lr"] = lr * factor
                x = sampler.batch(settings.batch).to(device, memory_format=layout)  # --crops-on-device's: itself
                level = sample_levels(x.shape[0], model.lowest_level, model.levels - 1, settings.level_tilt, device)
                with autocast(device, dtype):
                    passed = trained(x, level)
                out_terms = rate_distortion_loss(passed, x, model.lambdas_at(level), model.config.distortion)
                optimizer.zero_grad(set_to_none=True)
                out_terms["loss"].backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                step += 1
                busy += time.monotonic() - started
                elapsed += time.monotonic() - started
                for k in running:
                    running[k] += out_terms[k].detach()  # summed on the device: no wait for the GPU each step
                count += 1
                if rank == 0 and step % 100 == 0:
                    means = {k: float(v) / count for k, v in running.items()}
                    speed = count * settings.batch * world / busy
                    writer.writerow([step, f"{elapsed / 3600:.4f}", f"{lr:.2e}", f"{means['loss']:.4f}",
                                     f"{means['bpp']:.4f}", f"{means['mse']:.2f}", "", "", f"{speed:.2f}",
                                     f"{means['ms_ssim']:.5f}" if "ms_ssim" in means else ""])
                    handle.flush()
                    similarity = f" ms-ssim {means['ms_ssim']:.4f}" if "ms_ssim" in means else ""
                    log(f"step {step} loss {means['loss']:.3f} bpp {means['bpp']:.3f} mse {means['mse']:.1f}{similarity} "
                        f"lr {lr:.1e} {speed:.1f} crops/s")
                    running = dict.fromkeys(running, 0.0)
                    count, busy = 0, 0.0
                if rank == 0 and val_paths and settings.eval_every and step % settings.eval_every == 0:
                    for quality, (bpp, psnr) in evaluate_model(model, val_paths[: settings.eval_images]).items():
                        writer.writerow([step, f"{elapsed / 3600:.4f}", "", "", "", "", f"{bpp:.4f}", f"{psnr:.3f}", ""])
                        log(f"eval step {step} quality {quality}: {bpp:.3f} bpp {psnr:.2f} dB")
                    handle.flush()
                if time.monotonic() - last_checkpoint > settings.checkpoint_minutes * 60:
                    save_checkpoint()
                    last_checkpoint = time.monotonic()
        finally:
            save_checkpoint()
    if rank == 0 and settings.export is not None:
        model.cpu().eval()
        metadata = {"steps": step, "hours": round(elapsed / 3600, 3), "device": str(device), "world": world}
        save_weights(model, settings.export, metadata)
        log(f"exported weights to {settings.export}")
    return model
