"""Speed and fidelity of the render quality presets, in one run.

Renders the same latents (one per class, from the causal3dident preset) with every quality preset
and with a high-sample reference (the paper settings with ``--reference-samples`` samples), then
prints seconds per image, the speed-up of each preset over ``paper``, and PSNR / SSIM of each
against the reference. Target: ``fast`` >= 30x faster than ``paper`` at PSNR >= 38 dB.

    python benchmarks/perf/render_quality.py --resolution 128 --n 3

Seconds per image are steady-state: each preset first renders one warm-up image, which pays for
the first scene sync; starting the worker is not counted either.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.ndimage import gaussian_filter

from causal3dident.render.config import QUALITY_PRESETS, render_config
from causal3dident.render.devices import select_devices
from causal3dident.render.preview import class_latents, render_latents

TARGET_SPEEDUP = 30.0
TARGET_PSNR_DB = 38.0


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


def timed_render(latents: np.ndarray, classes: np.ndarray, quality: str, args: argparse.Namespace,
                 warm_up: bool = True, **overrides: object) -> tuple[np.ndarray, float]:
    """Images of the latents and seconds per image (steady state: after one warm-up image, if asked)."""
    config = render_config(quality, args.resolution, **overrides)
    stamps: list[float] = []
    extra = 1 if warm_up else 0
    start = time.perf_counter()
    images = render_latents(np.concatenate([latents[:extra], latents]), np.concatenate([classes[:extra], classes]),
                            config, select_devices(args.device), assets=args.assets, per_task=len(latents) + 1,
                            on_image=lambda: stamps.append(time.perf_counter()))
    first = stamps[0] if warm_up else start
    return images[extra:], (stamps[-1] - first) / len(latents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--n", type=int, default=3, help="latents to render (one per class, up to 7)")
    parser.add_argument("--reference-samples", type=int, default=2048)
    parser.add_argument("--presets", default=",".join(QUALITY_PRESETS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--assets", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    latents, classes = class_latents("causal3dident", 1, args.seed)
    latents, classes = latents[:args.n], classes[:args.n]
    reference, ref_s = timed_render(latents, classes, "paper", args, warm_up=False, samples=args.reference_samples)
    results = {}
    for quality in args.presets.split(","):
        results[quality] = timed_render(latents, classes, quality, args)

    print(f"{args.n} images at {args.resolution} px on {args.device}; reference: paper settings with "
          f"{args.reference_samples} samples ({ref_s:.2f} s/img, with start-up)")
    print(f"{'preset':<9}{'samples':>8}{'s/img':>9}{'speed-up':>10}{'PSNR dB':>9}{'min':>7}{'SSIM':>8}{'min':>8}")
    paper_s = results["paper"][1] if "paper" in results else None
    for quality, (images, seconds) in results.items():
        p = [psnr(a, b) for a, b in zip(images, reference)]
        s = [ssim(a, b) for a, b in zip(images, reference)]
        speedup = f"{paper_s / seconds:.1f}x" if paper_s else "-"
        samples = render_config(quality, args.resolution).samples
        print(f"{quality:<9}{samples:>8}{seconds:>9.3f}{speedup:>10}{np.mean(p):>9.2f}{min(p):>7.2f}"
              f"{np.mean(s):>8.4f}{min(s):>8.4f}")
    if "paper" in results and "fast" in results:
        images, seconds = results["fast"]
        speedup = results["paper"][1] / seconds
        worst = min(psnr(a, b) for a, b in zip(images, reference))
        ok = speedup >= TARGET_SPEEDUP and worst >= TARGET_PSNR_DB
        print(f"fast vs paper: {speedup:.1f}x faster, worst PSNR {worst:.2f} dB "
              f"(target >= {TARGET_SPEEDUP:.0f}x at >= {TARGET_PSNR_DB:.0f} dB): {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
