"""Learning curves of benchmark runs: held-out probes against training images seen, as one figure.

Reads the ``curve.csv`` that ``c3di bench run --eval-every N`` writes into each run folder and draws
one panel per factor (class accuracy, spotlight position R^2, rotation R^2 by default), one line per
run, labelled by the run folder (or ``--label``). Also prints each curve's values as a table.

    python benchmarks/perf/learning_curves.py runs/study/*/simclr/lt_hues/seed0 --out curves.png
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

ROT = ("rot_alpha", "rot_beta", "rot_gamma")
POS = ("pos_x", "pos_y", "pos_z")
PANELS = {
    "class": ("class accuracy (logistic)", ("class",), "logistic"),
    "spot_pos": ("spotlight position R^2", ("spot_pos",), "kernel_ridge"),
    "rot": ("rotation R^2 (mean of 3)", ROT, "kernel_ridge"),
    "pos": ("object position R^2 (mean of 3)", POS, "kernel_ridge"),
    "hues": ("hues R^2 (mean of 3)", ("hue_obj", "hue_spot", "hue_bg"), "kernel_ridge"),
}


def read_curve(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Panel name -> [(images seen, value)] of one run's curve.csv (factors of a panel averaged)."""
    per_step: dict[tuple[str, int], list[float]] = defaultdict(list)
    with (run / "curve.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            for panel, (_, factors, probe) in PANELS.items():
                if row["factor"] in factors and row["probe"] == probe:
                    per_step[(panel, int(row["images_seen"]))].append(float(row["value"]))
    curves: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for (panel, seen), values in sorted(per_step.items(), key=lambda kv: kv[0][1]):
        curves[panel].append((seen, sum(values) / len(values)))
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="Run folders holding curve.csv.")
    parser.add_argument("--label", action="append", default=None, help="Label per run (default: folder path).")
    parser.add_argument("--panels", default="class,spot_pos,rot", help=f"Comma-separated, of {', '.join(PANELS)}.")
    parser.add_argument("--out", type=Path, default=None, help="PNG to draw (needs matplotlib).")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    panels = [p.strip() for p in args.panels.split(",") if p.strip()]
    unknown = [p for p in panels if p not in PANELS]
    if unknown:
        parser.error(f"unknown panels {unknown}; choose from {', '.join(PANELS)}")
    labels = args.label or [str(r) for r in args.runs]
    if len(labels) != len(args.runs):
        parser.error("give one --label per run")
    curves = {label: read_curve(run) for label, run in zip(labels, args.runs)}
    for label, c in curves.items():
        print(label)
        for panel in panels:
            print(f"  {panel:9s}", " ".join(f"{seen // 1000}k:{v:.2f}" for seen, v in c.get(panel, [])))
    if args.out is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, c in curves.items():
            points = c.get(panel, [])
            ax.plot([p[0] / 1000 for p in points], [p[1] for p in points], marker="o", ms=3, label=label)
        ax.set_title(PANELS[panel][0], fontsize=10)
        ax.set_xlabel("training images seen (thousands)")
        ax.set_ylim(-0.05, 1.02)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    if args.title:
        fig.suptitle(args.title, fontsize=11)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
