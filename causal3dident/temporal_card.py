"""The data card of a sequence or triplet file (a temporal preset: CITRIS's Temporal Causal3DIdent and the like).

``c3di card FILE.h5`` on such a file writes README.md (the preset's equations and interventions as tables, the
intervention rates measured in the file, its provenance and the CITRIS reference) and preset.yaml (the recorded
preset, which ``c3di latents --preset preset.yaml`` samples again); ``c3di figures`` draws the filmstrip, the
latents over time and, for triplets, the triplets with their masks (causal3dident.figures).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .file_hash import sha256_of
from .latents import CLASS_NAMES, LATENT_NAMES
from .store import open_dataset, read_config
from .temporal import TemporalModel
from .temporal_schema import FixedSpec

CARD_FILES = ("README.md", "preset.yaml")
FIGURE_FILES = ("filmstrip.png", "sequence_latents.png", "triplets.png")
CITRIS_URL = "https://arxiv.org/abs/2202.03169"
CITRIS_BIBTEX = """@inproceedings{lippe2022citris,
  title     = {{CITRIS}: Causal Identifiability from Temporal Intervened Sequences},
  author    = {Lippe, Phillip and Magliacane, Sara and L{\\"o}we, Sindy and Asano, Yuki M and Cohen, Taco and
               Gavves, Stratis},
  booktitle = {Proceedings of the 39th International Conference on Machine Learning},
  series    = {Proceedings of Machine Learning Research},
  volume    = {162},
  pages     = {13557--13603},
  publisher = {PMLR},
  year      = {2022},
  url       = {https://proceedings.mlr.press/v162/lippe22a.html},
  note      = {arXiv:2202.03169}
}"""
ICITRIS_BIBTEX = """@inproceedings{lippe2023causal,
  title     = {Causal Representation Learning for Instantaneous and Temporal Effects in Interactive Systems},
  author    = {Lippe, Phillip and Magliacane, Sara and L{\\"o}we, Sindy and Asano, Yuki M and Cohen, Taco and
               Gavves, Efstratios},
  booktitle = {The Eleventh International Conference on Learning Representations},
  year      = {2023},
  url       = {https://openreview.net/forum?id=itZ6ggvMnzS},
  note      = {arXiv:2206.06169}
}"""
_ICITRIS = " (and iCITRIS, its instantaneous variant)"
FIGURE_CAPTIONS = {
    "filmstrip.png": "The first frames of the sequence; under each, the variables intervened in the step into it",
    "sequence_latents.png": "The latents over the first frames (CITRIS's units); dots: frames where the variable "
                            "was intervened",
    "triplets.png": "Triplets: the first and second frame and the frame mixing their latents; the grid marks the "
                    "variables the mixed frame takes from the second",
}


@dataclass(frozen=True)
class TemporalFacts:
    """What a temporal card states about one sequence or triplet file."""

    path: Path
    model: TemporalModel
    kind: str
    """``sequence`` or ``triplets``."""
    latents: np.ndarray
    """The preset's units: [N, 10] (triplets: [N, 3, 10], first, second, mixed)."""
    targets: np.ndarray
    """uint8 [N, T]: row t the columns intervened in the step t-1 -> t (triplets: the masks)."""
    target_names: tuple[str, ...]
    classes: np.ndarray
    """This package's labels, [N] (triplets: [N, 3])."""
    config: dict[str, Any]
    attrs: dict[str, Any]
    resolution: int | None

    @property
    def num_samples(self) -> int:
        return len(self.latents)

    @property
    def converted(self) -> dict[str, Any] | None:
        return self.config.get("converted")

    @property
    def instantaneous(self) -> bool:
        """Whether a goal reads a same-frame latent (iCITRIS's instantaneous effects)."""
        return any(m.reads() & set(LATENT_NAMES) for m in self.model.mechanisms.values())


def is_temporal_file(path: str | os.PathLike[str]) -> bool:
    """Whether a dataset file holds a sequence of a temporal preset or triplets of one."""
    with open_dataset(path) as f:
        return _temporal_config(read_config(f)) is not None


def _temporal_config(config: dict[str, Any]) -> dict[str, Any] | None:
    if "temporal" in config:
        return config
    source = config.get("sequence", {}).get("config", {})
    return source if "triplets" in config and "temporal" in source else None


def temporal_facts(path: str | os.PathLike[str]) -> TemporalFacts:
    """Facts of a sequence or triplet file (a sampled sequence is regenerated from its config if it keeps only
    /latents, as ``temporal_store.read_sequence`` does)."""
    from .temporal_store import model_from_config, read_sequence

    path = Path(path)
    with open_dataset(path) as f:
        config = read_config(f)
        model = model_from_config(_temporal_config(config) or {})
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()
                 if k in ("seed", "split", "package_version", "created", "render_settings", "shard")}
        resolution = int(f["images"].shape[1]) if "images" in f else None
        if "triplets" in config:
            latents, targets = f["triplets/latents"][...], f["triplets/masks"][...]
            names, classes, kind = tuple(config["triplets"]["mask_columns"]), f["triplets/classes"][...], "triplets"
        else:
            sequence = read_sequence(f)
            latents, targets, names = sequence["latents"], sequence["targets"], tuple(sequence["target_names"])
            classes, kind = f["classes"][...], "sequence"
    return TemporalFacts(path=path, model=model, kind=kind, latents=latents, targets=targets, target_names=names,
                         classes=classes, config=config, attrs=attrs, resolution=resolution)


# -- tables ---------------------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _goal(spec: Any) -> str:
    goal = spec.goal
    if isinstance(goal, dict):
        frame = "previous" if spec.goal_class == "prev_class" else "same"
        return f"per class ({frame} frame's): " + "; ".join(f"{c}: `{g}`" for c, g in goal.items())
    return f"`{goal}`"


def equations_table(model: TemporalModel) -> str:
    """One row per latent: its kind, domain, noise, rate and goal (what it reads)."""
    rows = []
    for name in LATENT_NAMES:
        mech = model.mechanisms[name]
        spec = mech.spec
        if isinstance(spec, FixedSpec):
            rows.append([f"`{name}`", "constant", "-", "-", "-", f"fixed at {spec.value:g}", "-"])
            continue
        reads = ", ".join(sorted(mech.reads())) or "-"
        rows.append([f"`{name}`", spec.type, f"[{spec.domain[0]:g}, {spec.domain[1]:g}]", f"{spec.sigma:g}",
                     f"{spec.rate:g}", _goal(spec), reads])
    return _table(["latent", "type", "domain", "noise sigma", "rate", "goal", "reads"], rows)


def configured_rates(model: TemporalModel) -> dict[str, float]:
    """The probability that each target column is intervened in a step, as the preset configures it (before
    ``mode: single`` keeps one of them): a group's members share its first member's draw, excluded and extra
    columns are never drawn on their own."""
    iv = model.spec.interventions
    never = set(iv.exclude) | set(iv.extra_columns)
    rates = {name: 0.0 if name in never else model.probability for name in model.target_names}
    for group in iv.groups:
        rates.update({member: rates[group[0]] for member in group})
    return rates


def interventions_text(facts: TemporalFacts) -> str:
    """The preset's intervention rules, then (sequences) the rates measured in the file beside the configured ones."""
    model = facts.model
    iv = model.spec.interventions
    groups = "; ".join(", ".join(g) for g in iv.groups) or "none (every column its own draw)"
    single = ": of the columns drawn in a step one, chosen uniformly, is kept" if iv.mode == "single" else ""
    rules = (f"- **Intervention probability:** {model.probability:.6g} per step for every target column "
             f"(mode `{iv.mode}`{single}).\n"
             f"- **Perfect interventions:** an intervened latent takes a value uniform on its domain, an "
             f"intervened class a uniform class.\n"
             f"- **Groups** (one draw each, coarse variables): {groups}.\n"
             f"- **Excluded from their own draws:** {', '.join(iv.exclude) or 'none'} (a group member still shares "
             f"its group's draw); **always-0 columns:** {', '.join(iv.extra_columns) or 'none'}.\n"
             f"- **Class:** {', '.join(model.class_names)} (the preset's order); it also switches with probability "
             f"{model.spec.classes.switch_probability:g} per step.")
    if facts.kind != "sequence" or facts.num_samples < 2:
        return rules
    steps = facts.targets[1:]
    counts = steps.sum(axis=0)
    configured = configured_rates(model)
    rows = [[f"`{name}`", int(counts[j]), f"{counts[j] / len(steps):.3f}", f"{configured.get(name, 0.0):.3f}"]
            for j, name in enumerate(facts.target_names)]
    measured = _table(["target column", "intervened steps", "measured rate", "configured"], rows)
    return (f"{rules}\n\nMeasured in this file ({len(steps):,} steps; `/sequence/targets`, row t: the step "
            f"t-1 -> t):\n\n{measured}")


def statistics_table(facts: TemporalFacts) -> str:
    z = facts.latents[:, 2] if facts.kind == "triplets" else facts.latents
    classes = facts.classes[:, 2] if facts.kind == "triplets" else facts.classes
    rows = [[f"`{n}`", f"{z[:, j].mean():+.3f}", f"{z[:, j].std():.3f}", f"{z[:, j].min():+.3f}",
             f"{z[:, j].max():+.3f}"] for j, n in enumerate(LATENT_NAMES)]
    counts = np.bincount(classes, minlength=len(CLASS_NAMES))
    which = "the mixed frames" if facts.kind == "triplets" else "all frames"
    return (f"Over {which} ({len(z):,}), in the preset's units:\n\n"
            + _table(["latent", "mean", "std", "min", "max"], rows) + "\n\n"
            + _table(["class"] + list(CLASS_NAMES), [["frames"] + [f"{int(k):,}" for k in counts]]))


def provenance_text(facts: TemporalFacts) -> str:
    path = facts.path
    lines = [_table(["file", "bytes", "SHA-256"], [[f"`{path.name}`", f"{path.stat().st_size:,}",
                                                   f"`{sha256_of(path)}`"]]), ""]
    if facts.converted:
        files = ", ".join(f"`{x['name']}` ({x['bytes']:,} bytes, SHA-256 `{x['sha256']}`)"
                          for x in facts.converted["files"])
        lines.append(f"Converted by `c3di convert --format citris` from CITRIS's {files}. Their random draws are not "
                     f"in those files, so the frames cannot be regenerated from a seed; the equations below are those "
                     f"of preset `{facts.model.name}`, which the conversion was told the files follow.")
    else:
        seed = facts.attrs.get("seed")
        lines.append(f"Sampled from preset `{facts.model.name}` with seed {seed}: every draw comes from counter-based "
                     f"streams keyed by (seed, frame), so `c3di verify` regenerates the file from its config and seed.")
    settings = facts.attrs.get("render_settings")
    if settings:
        lines.append(f"Rendering: {settings if isinstance(settings, str) else json.dumps(settings)}.")
    return "\n".join(lines)


# -- README ---------------------------------------------------------------------------------------------------
def _structure(facts: TemporalFacts) -> str:
    if facts.kind == "triplets":
        return ("A triplet file: /images and /latents hold the mixed frames, /triplets/first/images and "
                "/triplets/second/images the two source frames, /triplets/masks [N, T] the columns the mixed frame "
                "takes from the second, /triplets/latents [N, 3, 10] the three frames' latents in the preset's units.")
    return ("A sequence file: /images holds the frames in order, /sequence/latents [N, 10] the latents in the "
            "preset's units, /sequence/targets [N, T] the intervention targets (row t: the step t-1 -> t; row 0 "
            "all 0), /latents the same latents mapped onto [-1, 1].")


def _what(facts: TemporalFacts) -> str:
    images = f"{facts.resolution} x {facts.resolution} px images" if facts.resolution else "no images yet"
    if facts.kind == "triplets":
        masks = facts.config["triplets"].get("masks", "fine")
        return (f"{facts.num_samples:,} triplets ({masks} masks) of a sequence of the temporal preset "
                f"`{facts.model.name}`: two frames and a third whose latents mix theirs by a random mask, {images}")
    return f"A sequence of {facts.num_samples:,} frames of the temporal preset `{facts.model.name}`, {images}"


def readme(facts: TemporalFacts, figures: list[str], date: str) -> str:
    """README.md of a sequence or triplet file: ``figures`` drawn beside it, ``date`` YYYY-MM-DD."""
    from .card_text import license_text, project_bibtex

    model = facts.model
    split = facts.attrs.get("split") or facts.path.stem
    header = {"license": "other", "license_name": "research-use-mesh-terms",
              "pretty_name": f"Temporal Causal3DIdent ({model.name}: {split})",
              "tags": ["causal-representation-learning", "temporal", "interventions", "time-series", "synthetic",
                       "3d-rendering"],
              "annotations_creators": ["machine-generated"], "task_categories": ["image-feature-extraction"]}
    order = ", ".join(model.order)
    shown = "\n\n".join(f"![{FIGURE_CAPTIONS.get(f, f)}]({f})\n*{FIGURE_CAPTIONS.get(f, f)}.*" for f in figures) \
        or f"Draw them with `c3di figures {facts.path.name} --out DIR`."
    cite = CITRIS_BIBTEX + ("\n\n" + ICITRIS_BIBTEX if facts.instantaneous else "")
    effects = ("Goals read the parents' values in the *same* frame (instantaneous effects, iCITRIS); a frame is "
               f"computed in the order {order}.") if facts.instantaneous else \
        "Goals read the previous frame (`prev_<latent>`, `prev_class`): temporal effects only."
    return f"""---
{yaml.safe_dump(header, sort_keys=False, width=1000)}---

# Temporal Causal3DIdent ({model.name}: {split})

{_what(facts)}. Every latent moves from its value in the previous frame towards a goal set by its causal parents,
plus noise, and at random steps variables are intervened (Temporal Causal3DIdent, Lippe et al., *CITRIS*, ICML
2022, [{CITRIS_URL}]({CITRIS_URL})). {model.description}

*Generated by `c3di card {facts.path.name}`; regenerate rather than edit. preset.yaml beside it is the recorded
preset: `c3di latents --preset preset.yaml --n N` samples it again.*

## The temporal model (preset `{model.name}`)

Each step: `next = cur + rate * (goal - cur) + Normal(0, sigma)`; `angle` latents move the short way round and
wrap into their domain, `linear` ones are redrawn while outside it. {effects}

{equations_table(model)}

### Interventions

{interventions_text(facts)}

## Dataset structure

{_structure(facts)}
Target columns: {', '.join(facts.target_names)}. `c3di export {facts.path.name} DIR --format citris` writes
CITRIS's `.npz` files, which their `Causal3DDataset` reads; `causal3dident.sequence_dataset.TemporalCausal3DIdent`
loads sequences in windows of `seq_len` frames (docs/temporal.md in the project).

{provenance_text(facts)}

### Statistics

{statistics_table(facts)}

### Figures

{shown}

## Licence

{license_text()}

## Citation

Cite CITRIS, which introduced Temporal Causal3DIdent{_ICITRIS if facts.instantaneous else ''}:

```bibtex
{cite}
```

and this generator:

```bibtex
{project_bibtex(_Version(facts.attrs.get('package_version', '')), date[:4])}
```
"""


@dataclass(frozen=True)
class _Version:
    package_version: str


def preset_yaml(facts: TemporalFacts) -> str:
    header = (f"# The temporal preset recorded in {facts.path.name} (written by `c3di card`); sample it again with\n"
              f"# c3di latents --preset preset.yaml --n FRAMES --out seq.h5\n")
    return header + yaml.safe_dump(facts.model.to_dict(), sort_keys=False, allow_unicode=True, width=1000)


def write_temporal_card(facts: TemporalFacts, out: str | os.PathLike[str], *, figures: bool = True,
                        extra_pictures: list[Path] | tuple[Path, ...] = ()) -> list[Path]:
    """README.md, preset.yaml and (``figures``) the temporal figures of a sequence or triplet file; paths written."""
    import datetime as _dt
    import shutil

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    drawn: list[str] = []
    if figures:
        from .figures import draw_temporal_figures

        drawn = draw_temporal_figures(facts, out)
    for picture in extra_pictures:
        if Path(picture).resolve() != (out / Path(picture).name).resolve():
            shutil.copyfile(picture, out / Path(picture).name)
        drawn.append(Path(picture).name)
    created = str(facts.attrs.get("created") or "")
    date = created[:10] if created else _dt.date.today().isoformat()
    (out / "README.md").write_text(readme(facts, drawn, date), encoding="utf-8")
    (out / "preset.yaml").write_text(preset_yaml(facts), encoding="utf-8")
    return [out / name for name in [*CARD_FILES, *drawn]]

