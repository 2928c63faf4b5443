"""Write causal3dident/palettes.json: matplotlib's TABLEAU, CSS4 and XKCD colour dicts, in their order.

Multimodal3DIdent names each object colour after the nearest entry of one of these three palettes
(generate_latents.py). They are data, so the package reads this file instead of importing matplotlib;
run this once per matplotlib version to refresh it (tests/test_multimodal_text.py checks it still agrees).
"""

import json
from pathlib import Path

import matplotlib
from matplotlib.colors import CSS4_COLORS, TABLEAU_COLORS, XKCD_COLORS

OUT = Path(__file__).resolve().parent.parent / "causal3dident" / "palettes.json"

if __name__ == "__main__":
    data = {"source": f"matplotlib {matplotlib.__version__}: matplotlib.colors.TABLEAU_COLORS, CSS4_COLORS, "
                      f"XKCD_COLORS (name -> hex, in matplotlib's order)",
            "palettes": {"tableau": dict(TABLEAU_COLORS), "css4": dict(CSS4_COLORS), "xkcd": dict(XKCD_COLORS)}}
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}: " + ", ".join(f"{k} {len(v)}" for k, v in data["palettes"].items()))
