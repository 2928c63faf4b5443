"""Speed and fidelity of the render quality presets (and of candidate settings), image by image.

Renders the same latents (one per class and seed, drawn from the causal3dident preset) at each
resolution with every preset and candidate, and compares each image with a high-sample reference
(the paper settings with ``--reference-samples`` samples). Per resolution it prints seconds per image
(process CPU time and wall time, steady state), the speed-up over ``paper``, PSNR / SSIM against the
reference (mean and the worst image, named by class and seed), and a PASS / FAIL line per preset for
the target of ``fast``: >= 30x cheaper than ``paper`` at PSNR >= 38 dB for every image.

    python benchmarks/perf/render_quality.py --resolutions 64,128 --seeds 5,6,7
    python benchmarks/perf/render_quality.py --resolutions 128 --seeds 5 --presets paper,fast \\
        --candidate samples=12 --candidate samples=8,denoiser_prefilter=FAST

How it measures: each setting renders in its own worker process (the project's ``SceneRenderer``,
threads as ``c3di render`` gives one CPU worker), started once and warmed up on one image (not
counted; it pays for the first scene sync). The images are then rendered in turn by every setting,
the order rotating from image to image, so that all settings see the same machine load. Each image's
CPU time is the worker's ``time.process_time`` (all its threads, denoiser included) around the render;
on a shared machine it is steadier than wall time, and it is what the target is judged on (with
enough workers to fill the cores, throughput is CPU time). Speed-ups are ratios of totals over the
images both settings rendered (``--paper-seeds`` renders ``paper`` for some seeds only: it is costly).
References are cached on disk (``--cache``), keyed by their settings, latents, meshes and bpy version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from causal3dident.errors import ConfigError
from causal3dident.latents import CLASS_NAMES
from causal3dident.render import assets as assets_mod
from causal3dident.render.config import QUALITY_PRESETS, RenderConfig, parse_overrides, render_config
from causal3dident.render.devices import select_devices
from causal3dident.render.job import worker_specs
from causal3dident.render.preview import class_latents

TARGET_SPEEDUP = 30.0
TARGET_PSNR_DB = 38.0
DEFAULT_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "render_quality"
"""Where reference images are kept between runs (git-ignored)."""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) over pixels and channels."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for ch in range(a.shape[-1]):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)

        def blur(img: np.ndarray) -> np.ndarray:
            return gaussian_filter(img, sigma, truncate=3.5)

        mx, my = blur(x), blur(y)
        vx, vy, cov = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
        values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


# -- what is rendered -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """One latent vector to render: its class and the seed it was drawn with."""

    seed: int
    cls: int
    latents: np.ndarray

    @property
    def name(self) -> str:
        return f"{CLASS_NAMES[self.cls]}/seed {self.seed}"


def samples_for(seeds: list[int], classes: list[int]) -> list[Sample]:
    """The first sample of each class drawn from the causal3dident preset with each seed."""
    out = []
    for seed in seeds:
        latents, drawn = class_latents("causal3dident", 1, seed)
        out += [Sample(seed, int(drawn[c]), latents[c]) for c in classes]
    return out


@dataclass
class Setting:
    """A preset or candidate at one resolution, with what it rendered: per image, CPU s, wall s, PSNR, SSIM."""

    label: str
    config: RenderConfig
    rows: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)

    def changes(self) -> str:
        """The settings that differ from the paper's, as KEY=VALUE."""
        paper = RenderConfig(resolution=self.config.resolution).to_dict()
        mine = self.config.to_dict()
        return ",".join(f"{k}={v}" for k, v in mine.items() if k != "quality" and v != paper.get(k)) or "-"


def parse_candidate(text: str, resolution: int, label: str = "candidate") -> Setting:
    """``KEY=VALUE,KEY=VALUE`` (render ``--set`` keys) on top of the ``fast`` preset."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    return Setting(label, render_config("fast", resolution, **parse_overrides(items)))


# -- rendering in worker processes ----------------------------------------------------------------
def serve(conn: Any, config: RenderConfig, meshes: Any, device: Any, threads: int) -> None:
    """Worker process: build the scene, then render (latents, class) messages until None or the parent leaves."""
    fd = os.open(os.devnull, os.O_WRONLY)  # Blender's chatter
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from causal3dident.render.scene import SceneRenderer

    renderer = SceneRenderer(config, meshes, device, threads=threads)
    conn.send("ready")
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message is None:
                return
            latents, cls = message
            wall, cpu = time.perf_counter(), time.process_time()
            image = renderer.render(latents, cls)
            conn.send((image, time.process_time() - cpu, time.perf_counter() - wall))
    finally:
        renderer.close()


class Worker:
    """A render process of one setting (parent side): ``render`` returns (image, CPU s, wall s)."""

    def __init__(self, config: RenderConfig, device: str, assets: str | None) -> None:
        meshes = assets_mod.resolve(assets)
        spec = worker_specs(config, select_devices(device), meshes, workers=1)[0]
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=serve, args=(child, config, spec.meshes, spec.device, spec.threads),
                                   daemon=True)
        self.process.start()
        child.close()
        self.threads = spec.threads

    def wait_ready(self) -> None:
        if self.conn.recv() != "ready":
            raise RuntimeError("render worker did not start")

    def render(self, sample: Sample) -> tuple[np.ndarray, float, float]:
        self.conn.send((sample.latents, sample.cls))
        try:
            return self.conn.recv()
        except EOFError:
            raise RuntimeError(f"render worker died (exit code {self.process.exitcode})") from None

    def close(self) -> None:
        self.conn.send(None)
        self.process.join(timeout=60)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


# -- reference images, cached ---------------------------------------------------------------------
def reference_key(config: RenderConfig, sample: Sample, meshes: list[str]) -> str:
    """What a reference image depends on, hashed: settings, latents, class, mesh hashes and bpy's version."""
    try:
        bpy_version = metadata.version("bpy")
    except metadata.PackageNotFoundError:
        bpy_version = "?"
    blob = json.dumps({"config": config.to_dict(), "latents": sample.latents.astype(np.float64).tolist(),
                       "class": sample.cls, "meshes": meshes, "bpy": bpy_version}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def references(samples: list[Sample], config: RenderConfig, args: argparse.Namespace) -> tuple[list[np.ndarray], int]:
    """Reference images of the samples (from the cache where there, else rendered and cached), and how many rendered."""
    from PIL import Image

    meshes = [m.sha256 for m in assets_mod.resolve(args.assets)]
    cache = Path(args.cache) if args.cache else None
    paths = [cache / f"{config.resolution}px-{reference_key(config, s, meshes)}.png" if cache else None
             for s in samples]
    images: list[np.ndarray | None] = [None] * len(samples)
    for i, path in enumerate(paths):
        if path is not None and path.is_file():
            with Image.open(path) as image:
                images[i] = np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    missing = [i for i, image in enumerate(images) if image is None]
    if missing:
        worker = Worker(config, args.device, args.assets)
        try:
            worker.wait_ready()
            for n, i in enumerate(missing, 1):
                image, cpu, wall = worker.render(samples[i])
                images[i] = image
                if paths[i] is not None:  # at once: an interrupted run keeps every reference it rendered
                    paths[i].parent.mkdir(parents=True, exist_ok=True)
                    tmp = paths[i].with_name(f".{paths[i].name}.tmp-{os.getpid()}")
                    Image.fromarray(image).save(tmp, format="PNG")
                    os.replace(tmp, paths[i])
                log(f"reference {n}/{len(missing)} at {config.resolution} px ({samples[i].name}): "
                    f"{wall:.1f} s wall, {cpu:.1f} s CPU")
        finally:
            worker.close()
    return [image for image in images if image is not None], len(missing)


# -- one resolution -------------------------------------------------------------------------------
def measure(resolution: int, args: argparse.Namespace) -> dict[str, Any]:
    """Render and compare every setting at one resolution; print its table and return the figures."""
    samples = samples_for(args.seeds, args.classes)
    reference_config = render_config("paper", resolution, samples=args.reference_samples)
    load_before = os.getloadavg()
    refs, rendered = references(samples, reference_config, args)
    settings = [Setting(q, render_config(q, resolution)) for q in args.presets]
    settings += [parse_candidate(text, resolution, f"candidate {n}") for n, text in enumerate(args.candidate, 1)]
    workers = {s.label: Worker(s.config, args.device, args.assets) for s in settings}
    try:
        for worker in workers.values():
            worker.wait_ready()
        for worker in workers.values():
            worker.render(samples[0])  # warm-up, not counted
        for i, sample in enumerate(samples):
            k = i % len(settings)
            for setting in settings[k:] + settings[:k]:
                if setting.label == "paper" and sample.seed not in args.paper_seeds:
                    continue
                image, cpu, wall = workers[setting.label].render(sample)
                setting.rows[i] = (cpu, wall, psnr(image, refs[i]), ssim(image, refs[i]))
                if args.save:
                    save_pair(Path(args.save), resolution, setting, sample, image, refs[i])
            log(f"{resolution} px: image {i + 1}/{len(samples)} ({sample.name}) rendered by every setting")
    finally:
        for worker in workers.values():
            worker.close()
    load_after = os.getloadavg()
    threads = next(iter(workers.values())).threads
    header = (f"== {resolution} px: {len(samples)} images ({len(args.classes)} classes x seeds "
              f"{','.join(map(str, args.seeds))}; paper on seeds {','.join(map(str, args.paper_seeds))}) on "
              f"{args.device}, one worker of {threads} threads per setting; reference: paper settings with "
              f"{args.reference_samples} samples ({len(samples) - rendered} cached, {rendered} rendered); "
              f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    return report(header, resolution, samples, settings)


def report(header: str, resolution: int, samples: list[Sample], settings: list[Setting]) -> dict[str, Any]:
    """Print one resolution's table and PASS / FAIL lines; return its figures (JSON-able)."""
    print(header)
    paper = next((s for s in settings if s.label == "paper"), None)
    print(f"{'setting':<13}{'CPU s/img':>10}{'wall s/img':>11}{'x paper':>9}{'(wall)':>8}{'PSNR dB':>9}"
          f"{'worst':>7}  {'worst image':<22}{'SSIM':>7}{'worst':>7}")
    figures: dict[str, Any] = {"resolution": resolution, "header": header, "settings": []}
    for setting in settings:
        rows = setting.rows
        cpu, wall = np.mean([r[0] for r in rows.values()]), np.mean([r[1] for r in rows.values()])
        speed_cpu, speed_wall = speedups(paper, setting)
        p = {i: r[2] for i, r in rows.items()}
        s = {i: r[3] for i, r in rows.items()}
        worst = min(p, key=p.get)
        print(f"{setting.label:<13}{cpu:>10.3f}{wall:>11.3f}{fmt_x(speed_cpu):>9}{fmt_x(speed_wall):>8}"
              f"{np.mean(list(p.values())):>9.2f}{p[worst]:>7.2f}  {samples[worst].name:<22}"
              f"{np.mean(list(s.values())):>7.4f}{min(s.values()):>7.4f}")
        figures["settings"].append({
            "label": setting.label, "changes": setting.changes(), "cpu_s": float(cpu), "wall_s": float(wall),
            "speedup_cpu": speed_cpu, "speedup_wall": speed_wall, "psnr_mean": float(np.mean(list(p.values()))),
            "psnr_worst": p[worst], "worst_image": samples[worst].name, "ssim_mean": float(np.mean(list(s.values()))),
            "ssim_worst": min(s.values()),
            "images": [{"image": samples[i].name, "cpu_s": r[0], "wall_s": r[1], "psnr": r[2], "ssim": r[3]}
                       for i, r in rows.items()]})
    print("settings that differ from paper's:")
    for setting in settings:
        print(f"  {setting.label}: {setting.changes()}")
    for fig in figures["settings"]:
        if fig["label"] == "paper" or fig["speedup_cpu"] is None:
            continue
        ok = fig["speedup_cpu"] >= TARGET_SPEEDUP and fig["psnr_worst"] >= TARGET_PSNR_DB
        fig["pass"] = ok
        print(f"{'PASS' if ok else 'FAIL'} {resolution} px {fig['label']}: {fig['speedup_cpu']:.1f}x cheaper than "
              f"paper in CPU time ({fig['speedup_wall']:.1f}x in wall time), worst PSNR {fig['psnr_worst']:.2f} dB "
              f"({fig['worst_image']}); target >= {TARGET_SPEEDUP:.0f}x at >= {TARGET_PSNR_DB:.0f} dB for every image")
    return figures


def save_pair(folder: Path, resolution: int, setting: Setting, sample: Sample, image: np.ndarray,
              reference: np.ndarray) -> None:
    """Write image | reference | 8x absolute difference side by side, to see where a setting errs."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    diff = np.clip(np.abs(image.astype(np.int16) - reference.astype(np.int16)) * 8, 0, 255).astype(np.uint8)
    name = f"{resolution}px-{CLASS_NAMES[sample.cls]}-seed{sample.seed}-{setting.label.replace(' ', '')}"
    Image.fromarray(np.concatenate([image, reference, diff], axis=1)).save(folder / f"{name}.png")


def speedups(paper: Setting | None, setting: Setting) -> tuple[float | None, float | None]:
    """CPU and wall speed-ups over ``paper``: ratios of totals over the images both rendered."""
    shared = sorted(set(paper.rows) & set(setting.rows)) if paper is not None else []
    if not shared:
        return None, None
    return tuple(sum(paper.rows[i][k] for i in shared) / max(sum(setting.rows[i][k] for i in shared), 1e-12)
                 for k in (0, 1))  # type: ignore[return-value]


def fmt_x(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def class_list(text: str) -> list[int]:
    out = []
    for item in (v.strip() for v in text.split(",") if v.strip()):
        if item.isdigit() and int(item) < len(CLASS_NAMES):
            out.append(int(item))
        elif item in CLASS_NAMES:
            out.append(CLASS_NAMES.index(item))
        else:
            raise argparse.ArgumentTypeError(f"unknown class {item!r}; use 0-{len(CLASS_NAMES) - 1} or "
                                             f"{', '.join(CLASS_NAMES)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", "--resolution", type=int_list, default=[128], help="e.g. 64,128,224")
    parser.add_argument("--seeds", type=int_list, default=[5], help="latent seeds: one image per class and seed")
    parser.add_argument("--classes", type=class_list, default=list(range(len(CLASS_NAMES))),
                        help="class indices or names (default: all seven)")
    parser.add_argument("--presets", default=",".join(QUALITY_PRESETS))
    parser.add_argument("--candidate", action="append", default=[],
                        help="KEY=VALUE,... render settings on top of 'fast' (the keys of c3di render --set)")
    parser.add_argument("--paper-seeds", type=int_list, default=None,
                        help="seeds that 'paper' renders (default: all); speed-ups use these images")
    parser.add_argument("--reference-samples", type=int, default=2048)
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help="folder of cached references ('' for none)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--assets", default=None)
    parser.add_argument("--json", default=None, help="also write every figure (per image) to this file")
    parser.add_argument("--save", default=None, help="folder for image | reference | difference PNGs")
    args = parser.parse_args()
    args.presets = [p for p in args.presets.split(",") if p]
    args.paper_seeds = args.seeds if args.paper_seeds is None else args.paper_seeds
    try:
        for quality in args.presets:
            render_config(quality)
        for text in args.candidate:
            parse_candidate(text, 64)
    except ConfigError as exc:  # one line, exit 2, as the c3di commands do
        print(f"render_quality.py: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    results = []
    for resolution in args.resolutions:
        results.append(measure(resolution, args))
        sys.stdout.flush()
        if args.json:  # after each resolution: a long run keeps what it measured
            Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
