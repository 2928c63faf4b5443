"""The GPU check: in one run of at most 8 minutes on one GPU, what the project has never measured on a GPU.

(a) Cycles on the GPU: OptiX (else CUDA) images/s at 224 px ``fast`` quality for a few dozen latents,
    and the PSNR (mean and worst) of those images against the CPU render of the same latents.
(b) Training images/s of the benchmark's pipeline against the original's way (PIL images, torchvision
    transforms in DataLoader workers) at 224 px, ResNet-18, batch 512, DA crop (small) + colour
    (``train_throughput.py``'s measurement; target >= 3x).
(c) A few hundred steps of the ``gpu`` tier on LT hues with the loss every few steps, then the probes.

Each section has a time budget, prints its figures under a labelled heading and adds them to the
``--json`` file, which is rewritten after every section (what finished survives a kill). A section
that cannot run says why in one line (no bpy, Blender sees no GPU) and the others still run.

    python benchmarks/perf/gpu_check.py --json gpu_check.json            # on the GPU machine
    python benchmarks/perf/gpu_check.py --device cpu --tiny --json x.json  # every section at toy sizes

``--data DIR`` gives (c) a folder with ``train.h5`` (with its ``hues`` pairs) and ``test.h5``; without
it (c) renders a small one on the GPU that (a) found, or draws synthetic images when there is none.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the c3di bench CLI
sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling scripts: render_quality, train_throughput

import numpy as np  # noqa: E402
import torch  # noqa: E402

TOTAL_BUDGET_S = 480
GRACE_S = 20
"""A section still running this long after its budget is stopped (SIGALRM): the next one still gets its time."""
TRAIN_DATA_RENDER_S = 45
"""(c) renders its data on the GPU only if (a)'s rate says it takes at most this long; else synthetic images."""
SETTING_THROUGHPUT = "da_crop_small_colour"
SETTING_TRAIN = "lt_hues"


@dataclass(frozen=True)
class Sizes:
    """What each section does; ``FULL`` on a GPU, ``TINY`` for the tests on a CPU."""

    budget_s: dict[str, float]
    render_n: int  # latents rendered on the GPU (the first is the warm-up, not timed)
    render_reference_n: int  # of them, rendered on the CPU too for the PSNR
    render_resolution: int
    throughput_resolution: int
    throughput_batch: int
    throughput_steps: int
    throughput_warmup: int
    throughput_images: int  # training rows of the throughput file
    train_overrides: tuple[str, ...]  # on top of the gpu tier
    train_steps: int
    train_log_every: int
    train_anchors: int
    train_test: int


FULL = Sizes(budget_s={"render": 160, "throughput": 150, "train": 130}, render_n=37, render_reference_n=4,
             render_resolution=224, throughput_resolution=224, throughput_batch=512, throughput_steps=20,
             throughput_warmup=5, throughput_images=1536, train_overrides=(), train_steps=1000, train_log_every=50,
             train_anchors=1024, train_test=512)
TINY = Sizes(budget_s={"render": 120, "throughput": 120, "train": 120}, render_n=3, render_reference_n=2,
             render_resolution=32, throughput_resolution=32, throughput_batch=8, throughput_steps=2,
             throughput_warmup=1, throughput_images=40, train_overrides=("resolution=32", "train.batch_size=16"),
             train_steps=6, train_log_every=2, train_anchors=48, train_test=32)


class Report:
    """Prints labelled lines and keeps every section's figures in a JSON file, rewritten after each section."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}

    def line(self, text: str) -> None:
        print(text, flush=True)

    def heading(self, text: str) -> None:
        self.line(f"\n== {text} ==")

    def save(self, section: str, figures: dict[str, Any]) -> None:
        self.data[section] = figures
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=_jsonable))
        os.replace(tmp, self.path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


# -- (a) rendering ---------------------------------------------------------------------------------
def section_render(args: argparse.Namespace, sizes: Sizes, report: Report) -> tuple[dict[str, Any], list | None]:
    """GPU render speed and fidelity; returns the figures and the GPU devices that rendered (None: none)."""
    report.heading(f"(a) Cycles render: {sizes.render_n - 1} latents at {sizes.render_resolution} px, quality fast, "
                   f"on {args.render_device}; PSNR against the CPU render of {sizes.render_reference_n} of them")
    if importlib.util.find_spec("bpy") is None:
        reason = (f"bpy is not importable by this Python ({platform.python_version()}); bpy 5.0 needs Python 3.11: "
                  f"install causal3dident[render] there (docs/rendering.md, 'Checking a GPU machine')")
        report.line(f"render: skipped: {reason}")
        return {"skipped": reason}, None
    from causal3dident.generate import build_config, latents_for_config
    from causal3dident.render.config import render_config
    from causal3dident.render.devices import CPU, probe_gpus
    from causal3dident.render.worker import RenderError

    candidates = _render_candidates(args.render_device, probe_gpus)
    if not candidates:
        reason = (f"Blender sees no {'OptiX or CUDA' if args.render_device == 'auto' else args.render_device.upper()}"
                  f" GPU here (check nvidia-smi and that the driver's libraries are visible); GPU render skipped")
        report.line(f"render: {reason}")
        return {"skipped": reason}, None
    data = latents_for_config(build_config("causal3dident", sizes.render_n), 0, 0, sizes.render_n)
    latents, classes = data["latents"], data["classes"]
    config = render_config("fast", sizes.render_resolution)
    figures: dict[str, Any] = {"resolution": sizes.render_resolution, "quality": "fast", "latents": sizes.render_n - 1}
    for devices in candidates:
        kind = devices[0].kind
        try:
            images, rate, first = _timed_render(latents, classes, config, devices, args.assets)
        except RenderError as exc:
            report.line(f"render on {kind}: failed ({str(exc).splitlines()[0]}); trying the next backend")
            figures.setdefault("failed", {})[kind] = str(exc).splitlines()[0]
            continue
        figures.update(device=kind, gpu=", ".join(d.name for d in devices), images_per_s=rate, first_image_s=first)
        report.line(f"render device: {kind} ({figures['gpu']})")
        report.line(f"{kind} render: {rate:.2f} images/s steady state over {sizes.render_n - 1} images "
                    f"(first image after {first:.1f} s: worker start, scene, kernels)")
        k = sizes.render_reference_n
        reference, cpu_rate, _ = _timed_render(latents[:k + 1], classes[:k + 1], config, [CPU], args.assets)
        psnrs = [_psnr(a, b) for a, b in zip(images[1:k + 1], reference[1:])]
        figures.update(cpu_images_per_s=cpu_rate, psnr_db=psnrs, psnr_mean_db=float(np.mean(psnrs)),
                       psnr_worst_db=float(np.min(psnrs)), speedup_vs_cpu=rate / cpu_rate)
        report.line(f"CPU render (reference): {cpu_rate:.2f} images/s over {k} images; {kind} / CPU: "
                    f"{rate / cpu_rate:.1f}x")
        report.line(f"PSNR {kind} vs CPU (same latents, {k} images): mean {_db(figures['psnr_mean_db'])}, "
                    f"worst {_db(figures['psnr_worst_db'])}")
        return figures, devices
    report.line("render: every GPU backend failed; see the lines above")
    return figures, None


def _render_candidates(choice: str, probe: Callable[[], list]) -> list[list]:
    """The device lists to try in order: CPU only for ``cpu``; else every GPU of OptiX, then of CUDA, that Blender
    sees (only the kind asked for, when one is named)."""
    from causal3dident.render.devices import CPU

    if choice == "cpu":
        return [[CPU]]
    gpus = probe()
    kinds = ("OPTIX", "CUDA") if choice == "auto" else (choice.upper(),)
    return [[g for g in gpus if g.kind == kind] for kind in kinds if any(g.kind == kind for g in gpus)]


def _timed_render(latents: np.ndarray, classes: np.ndarray, config: Any, devices: list,
                  assets: str | None) -> tuple[np.ndarray, float, float]:
    """(images, images/s after the first image, seconds to the first image) of one render worker pool."""
    from causal3dident.render.preview import render_latents

    stamps: list[float] = []
    start = time.perf_counter()
    images = render_latents(latents, classes, config, devices, assets=assets, per_task=len(latents),
                            on_image=lambda: stamps.append(time.perf_counter()))
    steady = (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-9)
    return images, steady, stamps[0] - start


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from render_quality import psnr

    return psnr(a, b)


def _db(value: float) -> str:
    return "identical (inf dB)" if math.isinf(value) else f"{value:.2f} dB"


# -- (b) training throughput ------------------------------------------------------------------------
def section_throughput(args: argparse.Namespace, sizes: Sizes, report: Report, device: torch.device,
                       deadline: float, tmp: Path) -> dict[str, Any]:
    """Our pipeline against the PIL-in-DataLoader baseline (train_throughput.py), at the paper's sizes."""
    import train_throughput

    from causal3dident.benchmarks.settings import load_settings

    res, batch = sizes.throughput_resolution, sizes.throughput_batch
    report.heading(f"(b) training throughput: {res} px, resnet18, batch {batch}, {SETTING_THROUGHPUT}, "
                   f"{sizes.throughput_steps} timed steps per pipeline")
    held_out = 8 if args.tiny else 64
    path = tiled_dataset(tmp / "throughput.h5", sizes.throughput_images + held_out, res)
    steps = sizes.throughput_warmup + sizes.throughput_steps
    overrides = [f"resolution={res}", f"train.batch_size={batch}", f"train.steps={steps}", f"train.log_every={steps}",
                 f"train.checkpoint_every={steps + 1}", f"eval.samples={held_out}"]
    workers = args.workers or min(os.cpu_count() or 1, 16)
    figures = train_throughput.measure(path, load_settings()[SETTING_THROUGHPUT], "paper", overrides,
                                       sizes.throughput_warmup, device, workers, echo=report.line, deadline=deadline)
    best = max(figures["ratio"], key=figures["ratio"].get)
    figures["best"] = {"precision": best, "ratio": figures["ratio"][best], "target": 3.0,
                       "met": figures["ratio"][best] >= 3.0}
    report.line(f"ours / baseline, best ({best}): {figures['ratio'][best]:.2f}x "
                f"(target >= 3x: {'MET' if figures['best']['met'] else 'NOT MET'})")
    return figures


def tiled_dataset(path: Path, n: int, resolution: int, distinct: int = 64) -> Path:
    """A dataset file of ``n`` samples whose images repeat ``distinct`` synthetic ones: throughput does not depend
    on what the pixels show, and drawing each would cost more than the measurement."""
    from causal3dident.generate import build_config, write_latents_file
    from causal3dident.store import create_image_dataset, open_dataset
    from causal3dident.testing import draw_images

    config = build_config("causal3dident", n)
    config["images"] = {"source": "gpu_check.tiled_dataset", "resolution": resolution}
    write_latents_file(path, config, 0)
    with open_dataset(path, "r+") as f:
        tiles = draw_images(f["latents"][:distinct], f["classes"][:distinct], resolution)
        images = create_image_dataset(f, "images", n, resolution, resolution)
        for start in range(0, n, distinct):
            images[start:start + distinct] = tiles[:min(distinct, n - start)]
        f.attrs["num_rendered"] = n
        f.attrs["render_settings"] = '{"engine": "synthetic"}'
    return path


# -- (c) the gpu tier ------------------------------------------------------------------------------
class OutOfTime(Exception):
    """Raised from the step callback when (c)'s training budget is spent."""


def section_train(args: argparse.Namespace, sizes: Sizes, report: Report, device: torch.device,
                  render: tuple[list, float] | None, deadline: float, tmp: Path) -> dict[str, Any]:
    """A few hundred steps of the gpu tier on LT hues with their loss, then the probes on held-out data."""
    from causal3dident.benchmarks.data import load_data
    from causal3dident.benchmarks.evaluate import embed, evaluate
    from causal3dident.benchmarks.methods import resolve_method
    from causal3dident.benchmarks.settings import load_settings
    from causal3dident.benchmarks.tiers import load_tier
    from causal3dident.benchmarks.train import Trainer

    tier = load_tier("gpu", [*sizes.train_overrides])
    report.heading(f"(c) gpu tier: {SETTING_TRAIN}, {sizes.train_steps} steps at {tier.resolution} px, "
                   f"{tier.model.encoder}, batch {tier.train.batch_size}, lr {tier.train.lr}")
    folder, source, n_test = train_data(args, sizes, report, tier.resolution, tier.train.batch_size, render, tmp)
    tier = load_tier("gpu", [*sizes.train_overrides, f"train.steps={sizes.train_steps}",
                             f"train.log_every={sizes.train_log_every}",
                             f"train.checkpoint_every={sizes.train_steps + 1}", f"eval.samples={n_test}"])
    setting = load_settings()[SETTING_TRAIN]
    data = load_data(folder, setting, tier, seed=0)
    method = resolve_method("simclr", tier)
    torch.manual_seed(0)
    trainer = Trainer(method, method.build_encoder(tier), setting, tier, data, 0, device, "gpu-check")
    figures: dict[str, Any] = {"data": source, "anchors": len(data.train), "held_out": len(data.held_out),
                               "placement": trainer.placement, "loss": {}}
    stop_at = deadline - (10 if args.tiny else 25)  # leave time for the probes
    marks: dict[int, float] = {}

    def on_step(step: int, loss: float) -> None:
        if step % tier.train.log_every == 0 or step == tier.train.steps:  # on CUDA the loss is read at these only
            marks[step] = time.perf_counter()
            figures["loss"][step] = loss
            report.line(f"step {step:5d}: loss {loss:.4f}")
        if time.perf_counter() > stop_at:
            raise OutOfTime

    t0 = time.perf_counter()
    try:
        trainer.train(tmp / "gpu-run", on_step)
    except OutOfTime:
        report.line(f"stopped after step {trainer.step} of {tier.train.steps}: the section's time is spent")
    figures.update(steps=trainer.step, train_s=time.perf_counter() - t0)
    logged = sorted(marks)
    if len(logged) >= 2:  # steady state: between the first and the last logged step
        a, b = logged[0], logged[-1]
        figures["images_per_s"] = (b - a) * 2 * tier.train.batch_size / (marks[b] - marks[a])
        report.line(f"training: {figures['images_per_s']:.0f} images/s (steps {a}-{b}, two views per anchor); "
                    f"images on {trainer.placement['images']}")
    if time.perf_counter() > deadline:
        report.line("probes: skipped (out of time)")
        return figures
    features = embed(trainer.model, data.held_out.images, tier.eval.batch_size, trainer.device)
    rows, _ = evaluate(features, data.held_out.latents, data.held_out.classes, tier.eval, 0)
    final = [r for r in rows if r.layer == "final"]
    figures["probes"] = [{"probe": r.probe, "factor": r.factor, "metric": r.metric, "value": r.value} for r in final]
    for probe in dict.fromkeys(r.probe for r in final):
        report.line(f"probes, final layer, {probe}: " + ", ".join(f"{r.factor} {r.value:.2f}" for r in final
                                                                  if r.probe == probe))
    return figures


def train_data(args: argparse.Namespace, sizes: Sizes, report: Report, resolution: int, batch: int,
               render: tuple[list, float] | None, tmp: Path) -> tuple[Path, str, int]:
    """(folder with train.h5 and test.h5, what it holds, held-out samples to use): ``--data``, else rendered on (a)'s
    device (sized by (a)'s rate to take at most ``TRAIN_DATA_RENDER_S``), else synthetic."""
    if args.data is not None:
        report.line(f"data: {args.data}")
        return args.data, f"given: {args.data}", sizes.train_test
    folder = tmp / "train-data"
    folder.mkdir(exist_ok=True)
    n, m = sizes.train_anchors, sizes.train_test
    if render is not None and not args.tiny:  # no more than (a)'s rate renders in time, and at least one batch
        affordable = int(render[1] * TRAIN_DATA_RENDER_S)
        if affordable < 2 * n + m:
            m //= 2
            n = min(n, (affordable - m) // 2)
        if n < batch:
            report.line(f"data: (a) rendered {render[1]:.1f} images/s, too slow for {2 * batch + m} images in "
                        f"{TRAIN_DATA_RENDER_S} s; using synthetic images instead")
            render, n, m = None, sizes.train_anchors, sizes.train_test
    if render is not None:
        from causal3dident.render.config import render_config
        from causal3dident.render.job import run_job, sampled_input

        render_devices = render[0]
        start = time.perf_counter()
        config = render_config("fast", resolution)
        for name, count, seed, pairs in (("train", n, 0, "hues"), ("test", m, 1, None)):
            run_job(sampled_input("causal3dident", count, seed, pairs=pairs), folder / f"{name}.h5", config,
                    render_devices, assets=args.assets, progress=False)
        seconds = time.perf_counter() - start
        report.line(f"data: rendered {n} anchors with their hues views and {m} test samples at {resolution} px "
                    f"(fast) on {render_devices[0].kind} in {seconds:.0f} s ({(2 * n + m) / seconds:.1f} images/s)")
        return folder, f"rendered on {render_devices[0].kind}", m
    from causal3dident.testing import make_synthetic_dataset

    make_synthetic_dataset(folder / "train.h5", n=n, resolution=resolution, pairs=("hues",), seed=0)
    make_synthetic_dataset(folder / "test.h5", n=m, resolution=resolution, pairs=(), seed=1)
    report.line(f"data: synthetic polygons ({n} anchors with hues views, {m} test samples at {resolution} px; no GPU "
                f"render), so the probes say nothing about Causal3DIdent")
    return folder, "synthetic", m


# -- main ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("gpu_check.json"), help="Where the figures go (JSON).")
    parser.add_argument("--device", default="auto", help="Torch device for (b) and (c): auto, cuda or cpu.")
    parser.add_argument("--render-device", default="auto", choices=("auto", "optix", "cuda", "cpu"),
                        help="Cycles backend for (a): auto = OptiX, else CUDA; cpu for the tests.")
    parser.add_argument("--tiny", action="store_true", help="Toy sizes (32 px, a few images and steps): for tests.")
    parser.add_argument("--data", type=Path, default=None, help="(c)'s data: a folder with train.h5 and test.h5.")
    parser.add_argument("--train-data", default="auto", choices=("auto", "render", "synthetic"),
                        help="(c)'s data without --data: rendered on (a)'s device (auto: when that is a GPU), "
                             "or synthetic.")
    parser.add_argument("--sections", default="render,throughput,train", help="Comma-separated subset to run.")
    parser.add_argument("--workers", type=int, default=None, help="Baseline DataLoader workers (default: cores, <= 16).")
    parser.add_argument("--assets", default=None, help="Mesh folder (default: $C3DI_ASSETS or the cache).")
    args = parser.parse_args(argv)
    sizes = TINY if args.tiny else FULL
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(sizes.budget_s)
    if unknown:
        parser.error(f"--sections: unknown {', '.join(sorted(unknown))}; choose from render, throughput, train")

    from causal3dident.benchmarks.runner import pick_device

    device = pick_device(args.device)
    started = time.perf_counter()
    report = Report(args.json)
    meta = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "cpu_cores": os.cpu_count(), "tiny": args.tiny, "sizes": asdict(sizes)}
    report.line(f"gpu_check: torch {torch.__version__} on {meta['gpu'] or device}, Python {meta['python']}, "
                f"{meta['cpu_cores']} CPU cores{' (tiny sizes)' if args.tiny else ''}; figures -> {args.json}")
    if device.type != "cuda" and not args.tiny:
        report.line("note: no CUDA device; (b) and (c) measure the CPU")
    report.save("meta", meta)
    render_devices, render_rate = None, 0.0
    failed = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp_name:
        tmp = Path(tmp_name)
        for name in sections:
            budget = sizes.budget_s[name]
            deadline = time.perf_counter() + budget
            t = time.perf_counter()
            try:
                with time_limit(budget if name == "render" else budget + GRACE_S):
                    if name == "render":
                        figures, render_devices = section_render(args, sizes, report)
                        render_rate = figures.get("images_per_s", 0.0)
                    elif name == "throughput":
                        figures = section_throughput(args, sizes, report, device, deadline, tmp)
                    else:
                        render = _for_train_data(args, render_devices)
                        figures = section_train(args, sizes, report, device,
                                                None if render is None else (render, render_rate), deadline, tmp)
            except OutOfTime:
                report.line(f"{name}: stopped: out of time after {time.perf_counter() - t:.0f} s")
                figures = {"error": "out of time"}
                failed.append(name)
            except Exception as exc:  # one broken section must not hide the others' figures
                traceback.print_exc()
                report.line(f"{name}: FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                figures = {"error": f"{type(exc).__name__}: {exc}"}
                failed.append(name)
            figures["seconds"] = round(time.perf_counter() - t, 1)
            report.line(f"({name}: {figures['seconds']:.0f} s of its {budget} s)")
            report.save(name, figures)
    total = time.perf_counter() - started
    report.save("total", {"seconds": round(total, 1), "failed": failed})
    report.heading(f"done in {total:.0f} s (budget {TOTAL_BUDGET_S} s); figures in {args.json}"
                   + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise OutOfTime in this (the main) thread once ``seconds`` have passed: a render waiting on its workers or a
    slow step cannot overrun the whole check; the render pool's own clean-up then stops its workers."""

    def expire(signum: int, frame: Any) -> None:
        raise OutOfTime

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _for_train_data(args: argparse.Namespace, render_devices: list | None) -> list | None:
    """(a)'s render devices if (c) should render its data there: a GPU (auto), or any device (render)."""
    if args.train_data == "synthetic" or render_devices is None:
        return None
    if args.train_data == "auto" and render_devices[0].kind == "CPU":
        return None
    return render_devices


if __name__ == "__main__":
    sys.exit(main())
