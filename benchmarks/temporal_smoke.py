"""``c3di bench temporal``: a smoke run of a baseline through CITRIS's evaluation on a rendered sequence file.

A small convolutional autoencoder learns to reconstruct the first frames of the sequence; its latents of the
last frames (held out) go through ``causal3dident.citris_eval`` as CITRIS evaluates its baselines: R^2 of every
latent for every causal variable, each latent assigned to the variable it predicts best, then the R^2 and
Spearman matrices [variables, variables] of those groups with their ``diag`` and ``sep``. It proves the path
from a file to the matrices; with a few hundred steps on a few frames its numbers are not a result.

The run folder ``OUT/temporal_smoke/autoencoder/<preset>/seed<S>/`` holds ``run.json`` (config, seed, data hash,
versions, losses), ``results.csv`` (rows of the benchmark's columns, probe ``citris``), ``matrices.json`` and
``r2.csv`` / ``spearman.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from causal3dident.citris_eval import assignment_by_max_r2, correlation_matrices, diag_sep
from causal3dident.errors import ConfigError
from causal3dident.latents import CLASS_NAMES, LATENT_NAMES
from causal3dident.outputs import check_writable_folder, writing
from causal3dident.sequence_dataset import TemporalCausal3DIdent
from causal3dident.store import open_dataset, package_version, read_config, utc_now
from causal3dident.temporal import TemporalModel
from causal3dident.temporal_schema import StepSpec
from causal3dident.temporal_store import model_from_config

from .data import arrays_sha256
from .runner import RESULTS, pick_device, write_results

TIER = "temporal_smoke"
METHOD = "autoencoder"
PROBE = "citris"
WIDTHS = (16, 32, 64)
"""The autoencoder's conv widths (each a stride-2 3x3 convolution; the decoder mirrors them)."""


@dataclasses.dataclass(frozen=True)
class SmokeConfig:
    """What a smoke run trains and evaluates (recorded in run.json)."""

    steps: int = 300
    batch_size: int = 32
    latent_dim: int = 16
    lr: float = 1e-3
    held_out: float = 0.5
    """Fraction of the frames, the last ones, whose latents are evaluated (the rest train the autoencoder)."""
    eval_epochs: int = 100
    """Passes of CITRIS's prediction network (CITRIS: 100)."""


@dataclasses.dataclass(frozen=True)
class CausalVariables:
    """A sequence's causal variables in CITRIS's form: values [N, V] (angles in radians, the class an index of
    the preset's class order), their names and CITRIS's kinds (``continuous_<scale>``, ``angle``, ``categ_<k>``)."""

    values: np.ndarray
    names: list[str]
    var_info: list[str]


def causal_variables(model: TemporalModel, latents: np.ndarray, classes: np.ndarray) -> CausalVariables:
    """The preset's stepping latents (constants dropped) and the class. ``latents`` [N, 10] in the preset's units,
    ``classes`` this package's labels."""
    columns, names, info = [], [], []
    for j, name in enumerate(LATENT_NAMES):
        spec = model.mechanisms[name].spec
        if not isinstance(spec, StepSpec):
            continue
        low, high = spec.domain
        if spec.type == "angle":
            columns.append(2 * np.pi * (latents[:, j] - low) / (high - low))
            info.append("angle")
        else:
            columns.append(latents[:, j].astype(np.float64))
            info.append(f"continuous_{max(abs(low), abs(high)):g}")
        names.append(name)
    order = {c: k for k, c in enumerate(model.class_names)}
    columns.append(np.array([order[CLASS_NAMES[c]] for c in classes], dtype=np.float64))
    names.append("class")
    info.append(f"categ_{len(model.class_names)}")
    return CausalVariables(np.stack(columns, axis=1), names, info)


class AutoEncoder(nn.Module):
    """Stride-2 convolutions (``WIDTHS``) and a linear layer to ``latent_dim``; the decoder mirrors them with
    transposed convolutions and a sigmoid (pixels in [0, 1]). No batch norm: a sample's code is its own."""

    def __init__(self, resolution: int, latent_dim: int) -> None:
        super().__init__()
        side = resolution // 2 ** len(WIDTHS)
        layers: list[nn.Module] = []
        channels = 3
        for width in WIDTHS:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU()]
            channels = width
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * side * side, latent_dim))
        layers = [nn.Linear(latent_dim, channels * side * side), nn.ReLU(), nn.Unflatten(1, (channels, side, side))]
        for width in (*WIDTHS[-2::-1], 3):
            layers += [nn.ConvTranspose2d(channels, width, 4, stride=2, padding=1), nn.ReLU()]
            channels = width
        layers[-1] = nn.Sigmoid()
        self.decoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.decoder(z)


def train_autoencoder(images: torch.Tensor, config: SmokeConfig, seed: int, device: torch.device,
                      on_step: Callable[[int, float], None] | None = None) -> tuple[AutoEncoder, list[float]]:
    """``config.steps`` Adam steps of pixel MSE on batches drawn with replacement from ``images`` (float [N, 3, H, W]
    in [0, 1]); returns the model and every step's loss."""
    torch.manual_seed(seed)
    model = AutoEncoder(images.shape[-1], config.latent_dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    batches = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for step in range(1, config.steps + 1):
        batch = images[torch.randint(len(images), (config.batch_size,), generator=batches)].to(device)
        loss = nn.functional.mse_loss(model(batch)[1], batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    return model, losses


@torch.no_grad()
def encode(model: AutoEncoder, images: torch.Tensor, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """The latents float [N, latent_dim] of ``images``."""
    model.eval()
    return torch.cat([model.encoder(b.to(device)).cpu() for b in images.split(batch_size)]).numpy()


def evaluate_encodings(encodings: np.ndarray, variables: CausalVariables, *, epochs: int = 100,
                       seed: int = 0) -> dict[str, Any]:
    """CITRIS's evaluation of a baseline's latents: R^2 of each latent for each variable (``r2_per_latent``
    [D, V]), each latent assigned to its best variable (``assignment`` [D, V]), then ``r2`` and ``spearman``
    [V, V] of those groups and their diag and sep."""
    per_latent = correlation_matrices(encodings, variables.values, variables.var_info, epochs=epochs, seed=seed)["r2"]
    assignment = assignment_by_max_r2(per_latent)
    grouped = correlation_matrices(encodings, variables.values, variables.var_info, assignment, epochs=epochs,
                                   seed=seed)
    out: dict[str, Any] = {"variables": variables.names, "var_info": variables.var_info,
                           "r2_per_latent": per_latent, "assignment": assignment, **grouped}
    for key in ("r2", "spearman"):
        out[f"{key}_diag"], out[f"{key}_sep"] = diag_sep(grouped[key])
    return out


def load_sequence(path: Path) -> tuple[torch.Tensor, CausalVariables, dict[str, Any]]:
    """A rendered sequence file's frames (float [N, 3, H, W] in [0, 1]), causal variables and description."""
    with open_dataset(path) as f:
        if "images" not in f:
            raise ConfigError(f"{path} has no images; render the sequence first (c3di render {path} --out "
                              f"rendered.h5 --resolution 32) or give a rendered sequence file")
        config = read_config(f)
        if "temporal" not in config:
            raise ConfigError(f"{path} holds no sequence; give a rendered sequence file (c3di render --preset "
                              f"temporal_causal3dident --n FRAMES --resolution 32 --out seq.h5)")
        model = model_from_config(config)
    dataset = TemporalCausal3DIdent(path, seq_len=1, in_memory=True)
    pixels = dataset.source.read(np.arange(len(dataset.latents)))
    resolution = pixels.shape[1]
    if resolution % 2 ** len(WIDTHS) or resolution < 2 ** len(WIDTHS):
        raise ConfigError(f"{path}: {resolution} px frames; the smoke autoencoder needs a multiple of "
                          f"{2 ** len(WIDTHS)} px; render at 32 or 64 px")
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    variables = causal_variables(model, dataset.latents, dataset.classes)
    info = {"path": str(path), "frames": len(pixels), "resolution": resolution, "preset": model.name,
            "sha256": arrays_sha256([pixels, dataset.latents, dataset.classes])}
    return images, variables, info


def run_temporal_smoke(data: str | os.PathLike[str], out: str | os.PathLike[str], seed: int = 0,
                       config: SmokeConfig = SmokeConfig(), device: str = "cpu",
                       echo: Callable[[str], None] = lambda s: None) -> Path:
    """Train the autoencoder on the first frames of ``data``, evaluate the held-out frames' latents, write the run
    folder (see the module's docstring); returns it. The networks run on one CPU thread (they are tiny, and the
    numbers then do not depend on the core count)."""
    dev = pick_device(device)
    check_writable_folder(out)
    images, variables, info = load_sequence(Path(data))
    n_eval = int(round(len(images) * config.held_out))
    if n_eval < 8 or len(images) - n_eval < 1:
        raise ConfigError(f"{data}: {len(images)} frames give {n_eval} held-out and {len(images) - n_eval} training "
                          f"frames; need at least 8 held out and 1 to train: render more frames or change --held-out")
    path = Path(out) / TIER / METHOD / info["preset"] / f"seed{seed}"
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        echo(f"{path}: training the autoencoder on {len(images) - n_eval} frames ({config.steps} steps)")
        model, losses = train_autoencoder(images[:-n_eval], config, seed, dev)
        encodings = encode(model, images[-n_eval:], dev)
        echo(f"{path}: CITRIS's R^2 and Spearman matrices on {n_eval} held-out frames")
        result = evaluate_encodings(encodings, _rows(variables, slice(-n_eval, None)), epochs=config.eval_epochs,
                                    seed=seed)
    finally:
        torch.set_num_threads(threads)
    record = {"method": METHOD, "tier": TIER, "seed": seed, "config": dataclasses.asdict(config),
              "model": {"kind": "conv autoencoder", "widths": list(WIDTHS), "latent_dim": config.latent_dim},
              "dataset": info, "train_frames": len(images) - n_eval, "held_out_frames": n_eval,
              "losses": {"first": losses[0], "last": losses[-1], "every_10": losses[::10]},
              "summary": {k: result[k] for k in ("r2_diag", "r2_sep", "spearman_diag", "spearman_sep")},
              "package_version": package_version(), "torch_version": torch.__version__,
              "python": platform.python_version(), "device": str(dev), "finished": utc_now(),
              "seconds": round(time.perf_counter() - started, 1)}
    _write_json(path / "run.json", record)
    _write_json(path / "matrices.json", {k: np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
                                         for k, v in result.items()})
    for key in ("r2", "spearman"):
        _write_matrix(path / f"{key}.csv", result[key], variables.names)
    rows = [("all", f"{key}_{part}", result[f"{key}_{part}"]) for key in ("r2", "spearman") for part in ("diag", "sep")]
    rows += [(name, key, result[key][i, i]) for key in ("r2", "spearman") for i, name in enumerate(variables.names)]
    write_results(path / RESULTS, [{"method": METHOD, "setting": info["preset"], "tier": TIER, "seed": seed,
                                    "layer": "final", "probe": PROBE, "factor": factor, "metric": metric,
                                    "value": f"{value:.6f}"} for factor, metric, value in rows])
    return path


def _rows(variables: CausalVariables, part: slice) -> CausalVariables:
    return dataclasses.replace(variables, values=variables.values[part])


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path):
        tmp.write_text(json.dumps(data, indent=2, default=str))
        os.replace(tmp, path)


def _write_matrix(path: Path, matrix: np.ndarray, names: list[str]) -> None:
    """Rows: the groups of latents assigned to each variable; columns: the variables."""
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path), tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["group", *names])
        for name, row in zip(names, np.asarray(matrix)):
            writer.writerow([name, *(f"{v:.6f}" for v in row)])
    with writing(path):
        os.replace(tmp, path)
