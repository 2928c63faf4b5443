"""The leaderboard's Multimodal3DIdent sections: their results table (one row per modality and factor; linear and
kernel ridge R^2, logistic and MLP accuracy) per (method, tier, setting), mean +/- std over seeds.

Neither their code repository (imantdaunhawer/multimodal-contrastive-learning) nor its README lists the paper's
numbers (Daunhawer et al., ICLR 2023), and they were not transcribed from the paper: there is no reference column.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .imgtxt_eval import FACTORS

PROBES = (("linear", "r2", "R^2 linear"), ("kernel_ridge", "r2", "R^2 kernel ridge"),
          ("logistic", "accuracy", "acc. logistic"), ("mlp", "accuracy", "acc. MLP"))
"""Their results.csv columns r2_linreg, r2_krreg, acc_logreg, acc_mlp, in that order."""


def is_imgtxt_row(row: dict[str, str]) -> bool:
    """A row of a Multimodal3DIdent run: its factor is ``<modality>.<factor>``."""
    modality, dot, _ = row["factor"].partition(".")
    return bool(dot) and modality in FACTORS


def render_imgtxt_sections(rows: Sequence[dict[str, str]]) -> list[str]:
    """Markdown lines: one table per (method, tier, setting) of the Multimodal3DIdent rows."""
    values: dict[tuple[str, str, str], dict[tuple[str, str], dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if is_imgtxt_row(r) and r["layer"] == "final":
            cell = values[(r["method"], r["tier"], r["setting"])][(r["factor"], r["probe"])]
            cell[int(r["seed"])] = float(r["value"])
    lines: list[str] = []
    for (method, tier, setting), cells in sorted(values.items()):
        seeds = sorted({s for v in cells.values() for s in v})
        lines += [f"## {method}, tier `{tier}`, Multimodal3DIdent (`{setting}`)", "",
                  f"Seeds: {', '.join(map(str, seeds))}. Their protocol: probes fit on the val encodings, scored on "
                  f"test; R^2 for continuous factors, accuracy for discrete ones (empty: not probed that way). No "
                  f"reference column: their code repository and README list no numbers, and the paper's were not "
                  f"transcribed.", "",
                  "| modality | factor | " + " | ".join(h for _, _, h in PROBES) + " |",
                  "|---|---|" + "---|" * len(PROBES)]
        for modality, factors in FACTORS.items():
            for factor in factors:
                name = f"{modality}.{factor}"
                row = [modality, factor]
                for probe, _, _ in PROBES:
                    per_seed = cells.get((name, probe))
                    row.append(_cell(list(per_seed.values())) if per_seed else "")
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return lines


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"
