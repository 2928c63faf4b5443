"""What a perfect content encoder would score: every latent probed from the setting's true content latents.

An encoder that recovers the content exactly and nothing else is, for the probes, a function of the
content latents (class one-hot and the continuous content latents). Probing the held-out latents from
those, with the benchmark's own kernel ridge and the same fit / score split, gives that encoder's row:
content scores about 1, and a style latent scores what the causal model lets the content predict of it.
In Causal3DIdent the object hue depends on the object's class and position, so it scores about 0.3 in
every setting where it is style: a goal such as "changed hues <= 0.1" can only hold for the hues that
do not depend on the content (spotlight and background).

    python benchmarks/perf/content_oracle.py data/mini/test.h5 --setting lt_hues --setting da_colour
"""

from __future__ import annotations

import argparse

import h5py
import numpy as np
from sklearn.metrics import r2_score

from causal3dident.benchmarks.evaluate import kernel_ridge_cv, split_fit_score
from causal3dident.benchmarks.metrics import standardise
from causal3dident.benchmarks.settings import get_setting, load_settings, table1_ids
from causal3dident.benchmarks.tiers import load_tier
from causal3dident.latents import LATENT_NAMES, NUM_CLASSES


def content_features(latents: np.ndarray, classes: np.ndarray, content: tuple[str, ...]) -> np.ndarray:
    """[N, d]: the class one-hot (if the class is content) and the continuous content latents."""
    parts = [np.eye(NUM_CLASSES)[classes]] if "class" in content else []
    parts.append(latents[:, [LATENT_NAMES.index(n) for n in LATENT_NAMES if n in content]])
    return np.concatenate(parts, axis=1).astype(np.float64)


def oracle_r2(latents: np.ndarray, classes: np.ndarray, content: tuple[str, ...], tier_name: str = "mini",
              seed: int = 0) -> dict[str, float]:
    """Latent name -> held-out kernel-ridge R^2 of that latent from the true content latents."""
    tier = load_tier(tier_name)
    fit, score = split_fit_score(len(classes), tier.eval.fit_fraction, seed)
    x = content_features(latents, classes, content)
    x_fit, x_score = standardise(x[fit], x[score])
    y_fit, y_score = standardise(latents[fit].astype(np.float64), latents[score].astype(np.float64))
    pred, _ = kernel_ridge_cv(x_fit, y_fit, x_score, tier.eval, seed)
    return {name: float(r2_score(y_score[:, j], pred[:, j])) for j, name in enumerate(LATENT_NAMES)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="A dataset .h5 (its latents and classes are read; no images).")
    parser.add_argument("--setting", action="append", default=None, help="Setting id (repeatable; default: Table 1's).")
    parser.add_argument("--samples", type=int, default=2000, help="Rows probed (the first N; default 2000, the mini tier's).")
    parser.add_argument("--tier", default="mini", help="Tier whose probe settings and fit fraction are used.")
    args = parser.parse_args()
    settings = load_settings()
    ids = args.setting or table1_ids(settings)
    with h5py.File(args.file, "r") as f:
        latents, classes = f["latents"][:args.samples], f["classes"][:args.samples]
    print(f"{'setting':24s} " + " ".join(f"{n:>9s}" for n in LATENT_NAMES))
    for setting_id in ids:
        setting = get_setting(setting_id, settings)
        r2 = oracle_r2(latents, classes, setting.content, args.tier)
        marks = {n: "" if n in setting.content else "*" for n in LATENT_NAMES}
        print(f"{setting_id:24s} " + " ".join(f"{r2[n]:8.2f}{marks[n] or ' '}" for n in LATENT_NAMES))
    print("(* style in that setting; kernel-ridge R^2 from the true content latents, held-out score part)")


if __name__ == "__main__":
    main()
