"""One benchmark run end to end (data -> train or load encoder -> evaluate -> results rows) and sweeps.

A run lives in ``OUT/<tier>/<method>/<setting>/seed<S>/``: ``run.json`` (config, seed, dataset
hash, versions, timings, probe choices), ``checkpoint.pt``, ``train_log.csv`` and ``results.csv``
(the rows). A run with ``results.csv`` is finished; one with only a checkpoint resumes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from causal3dident.errors import ConfigError
from causal3dident.outputs import check_writable_folder, writing
from causal3dident.store import package_version, utc_now

from .data import load_data
from .evaluate import embed, evaluate
from .methods import load_object, method_params, resolve_method
from .settings import Setting
from .tiers import Tier, tier_from_dict, upgrade_recorded
from .train import StepCallback, Trainer, autocast_dtype, read_checkpoint

RESULTS = "results.csv"
RECORD = "run.json"
CURVE = "curve.csv"
COLUMNS = ("method", "setting", "tier", "seed", "layer", "probe", "factor", "metric", "value")


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
    return torch.device(name)


def run_dir(out: str | os.PathLike[str], tier: str, method: str, setting: str, seed: int) -> Path:
    return Path(out) / tier / method / setting / f"seed{seed}"


def is_finished(path: Path) -> bool:
    return (path / RESULTS).is_file()


def run_benchmark(setting: Setting, tier: Tier, seed: int, data: str | os.PathLike[str], out: str | os.PathLike[str],
                  method: str | None = None, encoder: str | None = None, device: str = "auto",
                  on_step: StepCallback | None = None, echo: Callable[[str], None] = lambda s: None,
                  eval_every: int = 0) -> Path:
    """Train ``method`` (default simclr) or load ``encoder``, evaluate, write the run folder; returns it.

    With ``encoder``, ``method`` only names the rows. An interrupted run resumes from its checkpoint.
    ``eval_every`` > 0 also probes the held-out samples every that many steps into ``curve.csv``
    (a learning curve; training itself is unchanged by it).
    """
    dev = pick_device(device)
    torch.manual_seed(seed)
    if encoder is not None:
        check_encoder(encoder)  # before the data is read: a wrong --encoder fails at once
    method_obj = resolve_method(method or "simclr", tier) if encoder is None else None
    name = method_obj.name if method_obj is not None else (method or _encoder_name(encoder or ""))
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"method name {name!r} must be letters, digits, '_', '.' or '-' (it names the rows and a "
                          f"folder); with --encoder, pass --method NAME")
    check_writable_folder(out)  # before the data is read and the model trained
    data_ = load_data(data, setting, tier, seed, train=encoder is None)
    path = run_dir(out, tier.name, name, setting.id, seed)
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "method": name, "method_spec": method or "simclr", "encoder": encoder, "setting": setting.to_dict(),
        "method_params": method_params(method or "simclr", tier) if method_obj is not None else None,
        "tier": tier.to_dict(), "seed": seed, "dataset": data_.info, "package_version": package_version(),
        "torch_version": torch.__version__, "python": platform.python_version(), "device": str(dev),
        "mixed_precision": "bf16" if autocast_dtype(tier.train.precision, dev) else None, "channels_last": True,
        "started": utc_now(),
    }
    started = time.perf_counter()
    if method_obj is not None:
        model = method_obj.build_encoder(tier)
        trainer = Trainer(method_obj, model, setting, tier, data_, seed, dev, _fingerprint(record))
        trainer.resume(path)  # a damaged checkpoint is refused before anything is written
        write_record(path, record)
        echo(f"{path}: training {name} on {setting.id} ({tier.train.steps} steps, {len(data_.train)} anchors)")
        if eval_every > 0:
            on_step = _with_curve(on_step, trainer, data_, tier, seed, dev, path / CURVE, eval_every)
        record["train"] = trainer.train(path, on_step)
        model = trainer.model
    else:
        model = load_encoder(encoder or "", tier, dev)
    echo(f"{path}: evaluating on {len(data_.held_out)} held-out samples")
    features = embed(model, data_.held_out.images, tier.eval.batch_size, dev)
    rows, details = evaluate(features, data_.held_out.latents, data_.held_out.classes, tier.eval, seed,
                             content=setting.content)
    record["eval"] = details
    record["finished"] = utc_now()
    record["seconds"] = round(time.perf_counter() - started, 1)
    write_record(path, record)
    write_results(path / RESULTS, [{"method": name, "setting": setting.id, "tier": tier.name, "seed": seed,
                                    "layer": r.layer, "probe": r.probe, "factor": r.factor, "metric": r.metric,
                                    "value": f"{r.value:.6f}"} for r in rows])
    return path


def _with_curve(on_step: StepCallback | None, trainer: Trainer, data: Any, tier: Tier, seed: int,
                dev: torch.device, path: Path, every: int) -> StepCallback:
    """``on_step`` plus, every ``every`` steps, the final layer's probes on the held-out samples as rows of
    ``path`` (step, images seen, factor, probe, metric, value); the model goes back to training mode."""

    def step(k: int, loss: float) -> None:
        if on_step is not None:
            on_step(k, loss)
        if k % every and k != tier.train.steps:
            return
        features = embed(trainer.model, data.held_out.images, tier.eval.batch_size, dev)
        trainer.model.train()
        rows, _ = evaluate({"final": features["final"]}, data.held_out.latents, data.held_out.classes, tier.eval,
                           seed)
        new = not path.exists()
        with path.open("a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["step", "images_seen", "loss", "probe", "factor", "metric", "value"])
            for r in rows:
                writer.writerow([k, k * tier.train.batch_size, f"{loss:.5f}", r.probe, r.factor, r.metric,
                                 f"{r.value:.6f}"])

    return step


def _fingerprint(record: dict[str, Any]) -> str:
    """What a checkpoint must match to be resumed: method, setting, tier, seed and data."""
    keys = ("method_spec", "setting", "tier", "seed")
    ident = {k: record[k] for k in keys} | {"data": record["dataset"]["sha256"]}
    pairs = record["dataset"].get("pairs") or {}
    if pairs.get("mode") == "nearest":  # a checkpoint of another nearest-pair scheme would resume on other pairs
        ident["pairs"] = pairs["version"]
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


def write_record(path: Path, record: dict[str, Any]) -> None:
    """The run's record (JSON) in ``path``, replaced atomically: a killed run leaves the old one or the new."""
    tmp = path / f".{RECORD}.tmp"
    with writing(path / RECORD):
        tmp.write_text(json.dumps(record, indent=2, default=str))
        os.replace(tmp, path / RECORD)


def write_results(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """The rows as CSV, written atomically (its presence marks the run finished)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path), tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with writing(path):
        os.replace(tmp, path)


# -- already-trained encoders ----------------------------------------------------------------------
def _encoder_name(encoder: str) -> str:
    """Default method column for a plugged-in encoder: the checkpoint's method, or the function's name."""
    if encoder.endswith(".pt"):
        return str(_encoder_record(encoder)["method"])
    return encoder.rpartition(":")[2]


ENCODER_FORMS = "module:function, path/to/file.py:function, or the checkpoint.pt of an earlier 'c3di bench run'"


def check_encoder(spec: str) -> None:
    """Fail in one line, before any work, if ``--encoder spec`` names no readable checkpoint or no function."""
    if spec.endswith(".pt"):
        _encoder_record(spec)
        read_checkpoint(Path(spec), "cpu", fix=_RETRAIN.format(folder=Path(spec).parent))
    elif ":" in spec:
        if not callable(load_object(spec, "--encoder")):
            raise ConfigError(f"--encoder {spec}: that is not a function; give {ENCODER_FORMS}")
    else:
        raise ConfigError(f"--encoder {spec}: not a checkpoint (.pt) or module:function; give {ENCODER_FORMS}")


_RETRAIN = "delete its run folder {folder} and rerun 'c3di bench run' for that run to train it again"


def _encoder_record(spec: str) -> dict[str, Any]:
    """The ``run.json`` beside a ``--encoder`` checkpoint."""
    ckpt = Path(spec)
    record_path = ckpt.parent / RECORD
    if not ckpt.is_file() or not record_path.is_file():
        raise ConfigError(f"--encoder {spec}: no such {'file' if not ckpt.is_file() else RECORD + ' beside it'}; "
                          f"give {ENCODER_FORMS} (its {RECORD} must be beside it)")
    try:
        record = json.loads(record_path.read_text())
        problem = None if {"tier", "method_spec", "method"} <= set(record) else "it lacks tier, method or method_spec"
    except (ValueError, TypeError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        raise ConfigError(f"--encoder {spec}: {record_path} is damaged ({problem}); "
                          + _RETRAIN.format(folder=ckpt.parent))
    return record


def load_encoder(spec: str, tier: Tier, device: torch.device) -> nn.Module:
    """An already-trained encoder: ``module:function`` (``function(tier)`` -> nn.Module) or a checkpoint.pt
    written by this harness (rebuilt from the ``run.json`` beside it, weights loaded with weights_only)."""
    if spec.endswith(".pt"):
        ckpt = Path(spec)
        record = _encoder_record(spec)
        run_tier = tier_from_dict(record["tier"]["name"], upgrade_recorded(record["tier"]))
        model = resolve_method(record["method_spec"], run_tier).build_encoder(run_tier)
        state = read_checkpoint(ckpt, "cpu", fix=_RETRAIN.format(folder=ckpt.parent))
        model.load_state_dict(state["model"])
        return model.to(device, memory_format=torch.channels_last)
    check_encoder(spec)
    model = load_object(spec, "--encoder")(tier)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--encoder {spec}: the function must return a torch.nn.Module, got {type(model).__name__}")
    return model.to(device, memory_format=torch.channels_last)
