"""Contact sheets: classes x random latents, to compare the renderer's look with the paper's images."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..generate import build_config, latents_for_config
from ..latents import CLASS_NAMES, LATENT_NAMES, NUM_CLASSES
from ..outputs import make_parent, write_failed
from . import assets as assets_mod
from .config import RenderConfig
from .devices import DeviceSpec, require_bpy
from .job import worker_specs
from .worker import Task, WorkerPool

if TYPE_CHECKING:
    from PIL import Image

GAP = 4
"""White pixels between tiles, as in the paper's figure."""
LABEL_WIDTH = 76
"""Pixels of the label column on the left of a traversal sheet."""


def class_latents(preset: str, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``per_class`` samples of each class drawn from ``preset``: latents [7 * k, 10], classes."""
    if per_class < 1:
        raise ConfigError(f"--per-class must be >= 1, got {per_class}")
    pool = 64 * per_class * NUM_CLASSES
    data = latents_for_config(build_config(preset, pool), seed, 0, pool)
    rows = []
    for c in range(NUM_CLASSES):
        found = np.flatnonzero(data["classes"] == c)[:per_class]
        if len(found) < per_class:
            raise ConfigError(f"preset {preset!r} rarely draws class {c}; cannot fill its row of the sheet")
        rows.append(found)
    order = np.concatenate(rows)
    return data["latents"][order], data["classes"][order]


def render_latents(latents: np.ndarray, classes: np.ndarray, config: RenderConfig, devices: Sequence[DeviceSpec],
                   *, workers: int | None = None, assets: str | os.PathLike[str] | None = None,
                   per_task: int = 4, on_image: Callable[[], None] | None = None,
                   scene: str = "causal3dident") -> np.ndarray:
    """uint8 [N, H, W, 3] images of some latents, rendered by worker processes (no files); ``scene``: how the
    scene reads them (``latents.SCENE_MAPPINGS``)."""
    require_bpy()
    meshes = assets_mod.resolve(assets)
    tasks = [Task(key=i, classes=classes[a:a + per_task], streams={"images": latents[a:a + per_task]}, scene=scene)
             for i, a in enumerate(range(0, len(latents), per_task))]
    images = np.empty((len(latents), config.resolution, config.resolution, 3), dtype=np.uint8)

    def done(task: Task, result: dict[str, np.ndarray] | None) -> None:
        assert result is not None
        images[task.key * per_task: task.key * per_task + len(task.classes)] = result["images"]

    WorkerPool(worker_specs(config, devices, meshes, workers)[:len(tasks)]).run(tasks, on_image or (lambda: None), done)
    return images


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """Images [N, H, W, 3] laid out in rows of ``columns``, separated by white gaps."""
    n, h, w, _ = images.shape
    rows = (n + columns - 1) // columns
    sheet = np.full((rows * (h + GAP) - GAP, columns * (w + GAP) - GAP, 3), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * (h + GAP): r * (h + GAP) + h, c * (w + GAP): c * (w + GAP) + w] = image
    return sheet


def contact_sheet(preset: str, per_class: int, seed: int, config: RenderConfig, devices: Sequence[DeviceSpec],
                  *, workers: int | None = None, assets: str | os.PathLike[str] | None = None) -> Image.Image:
    """A PIL image: one row per class, ``per_class`` random latents of it per row."""
    from PIL import Image

    latents, classes = class_latents(preset, per_class, seed)
    images = render_latents(latents, classes, config, devices, workers=workers, assets=assets)
    return Image.fromarray(tile(images, per_class))


def traversal_latents(preset: str, seed: int, steps: int, class_name: str | None = None
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One base sample of ``preset`` (of ``class_name`` if given); then one row per latent in which only that
    latent sweeps ``steps`` evenly spaced values over [-1, 1], and a first row sweeping the classes.

    Returns latents [rows * steps, 10], classes and the row labels. The latents are raw ([-1, 1]), so a
    traversal can leave the SCM's support: it shows what each latent does, not what the SCM draws.
    """
    if steps < 2:
        raise ConfigError(f"--steps must be >= 2, got {steps}")
    base_class = None
    if class_name is not None:
        if class_name not in CLASS_NAMES:
            raise ConfigError(f"unknown class {class_name!r}; choose one of {', '.join(CLASS_NAMES)}")
        base_class = CLASS_NAMES.index(class_name)
    z, c = class_latents(preset, 1, seed)
    k = 0 if base_class is None else base_class
    base, cls = z[k], int(c[k])
    values = np.linspace(-1.0, 1.0, steps, dtype=np.float32)
    class_row = np.resize(np.arange(NUM_CLASSES), steps)
    latents = [np.tile(base, (steps, 1))]
    classes = [class_row]
    for i in range(len(LATENT_NAMES)):
        row = np.tile(base, (steps, 1))
        row[:, i] = values
        latents.append(row)
        classes.append(np.full(steps, cls))
    labels = ["class"] + list(LATENT_NAMES)
    return np.concatenate(latents).astype(np.float32), np.concatenate(classes).astype(np.int64), labels


def traversal_sheet(preset: str, seed: int, steps: int, config: RenderConfig, devices: Sequence[DeviceSpec], *,
                    class_name: str | None = None, workers: int | None = None,
                    assets: str | os.PathLike[str] | None = None) -> Image.Image:
    """A PIL image: one labelled row per latent (and one for the class), that latent varied, the rest fixed."""
    from PIL import Image, ImageDraw

    latents, classes, labels = traversal_latents(preset, seed, steps, class_name)
    images = render_latents(latents, classes, config, devices, workers=workers, assets=assets)
    grid = tile(images, steps)
    sheet = Image.new("RGB", (grid.shape[1] + LABEL_WIDTH, grid.shape[0]), "white")
    sheet.paste(Image.fromarray(grid), (LABEL_WIDTH, 0))
    draw = ImageDraw.Draw(sheet)
    h = config.resolution
    for r, label in enumerate(labels):
        draw.text((4, r * (h + GAP) + h // 2 - 5), label, fill="black")
    return sheet


def save_sheet(sheet: Image.Image, out: str | os.PathLike[str]) -> Path:
    """Write ``sheet`` as a PNG at ``out`` through a temporary name, so a failed write leaves no half file."""
    out = make_parent(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        sheet.save(tmp, format="PNG")
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_failed(out, exc) from None
    return out
