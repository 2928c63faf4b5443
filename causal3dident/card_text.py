"""The text of the data cards: a Hugging Face style README and a datasheet (Gebru et al., 2021).

Every number comes from a ``DatasetFacts``; the Responsible-AI answers are written once here and
shared with the Croissant file, so the card, the datasheet and croissant.json cannot disagree.
What differs between Causal3DIdent and Multimodal3DIdent is one ``CardVariant`` each, chosen once by the
preset's scene (``variant``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .dataset_facts import DatasetFacts, factor_table, meshes
from .dependence import edge_dependence
from .latents import CLASS_NAMES, LATENT_NAMES

PAPER_URL = "https://arxiv.org/abs/2106.04619"
DATASET_URL = PAPER_URL  # the paper that introduced Causal3DIdent; replace by the project's page once public
PAPER_BIBTEX = """@inproceedings{vonkugelgen2021self,
  title     = {Self-Supervised Learning with Data Augmentations Provably Isolates Content from Style},
  author    = {von K{\\"u}gelgen, Julius and Sharma, Yash and Gresele, Luigi and Brendel, Wieland and
               Sch{\\"o}lkopf, Bernhard and Besserve, Michel and Locatello, Francesco},
  booktitle = {Advances in Neural Information Processing Systems},
  year      = {2021}
}"""
TAGS: tuple[str, ...] = ("causal-representation-learning", "identifiability", "self-supervised-learning",
                         "disentanglement", "synthetic", "3d-rendering", "structural-causal-model")
HF_TASKS: tuple[str, ...] = ("image-feature-extraction", "image-classification")
FIGURE_CAPTIONS: dict[str, str] = {
    "causal_graph.png": "The causal graph of the SCM (drawn from the preset)",
    "latent_histograms.png": "Marginal distribution of each latent and of the class",
    "dependence.png": "Dependence the SCM induces: |Spearman| and mutual information between latents and class",
    "dependence_pairs.png": "Scatter of the latent pairs joined by an SCM edge, coloured by class",
    "sample_grid.png": "Samples of the dataset, one row per class",
    "traversals.png": "Latent traversals: one latent varied over [-1, 1] per row, the rest fixed (`c3di traversals`)",
    "lt_pairs.png": "Latent-transformation pairs: anchor (top) and transformed view (bottom)",
    "image_text_pairs.png": "Multimodal3DIdent image/text pairs: each image above its sentence",
}


MULTIMODAL_PAPER_URL = "https://arxiv.org/abs/2303.09166"
MULTIMODAL_TAGS: tuple[str, ...] = ("multimodal", "image-text", "contrastive-learning")
MULTIMODAL_BIBTEX = """@inproceedings{daunhawer2023multimodal,
  title     = {Identifiability Results for Multimodal Contrastive Learning},
  author    = {Daunhawer, Imant and Bizeul, Alice and Palumbo, Emanuele and Marx, Alexander and Vogt, Julia E.},
  booktitle = {International Conference on Learning Representations},
  year      = {2023}
}"""


# -- the dataset a card describes --------------------------------------------------------------------
def _multimodal_section() -> str:
    """The card's section on the text side of a Multimodal3DIdent variant."""
    from . import multimodal_text as mt
    from .multimodal import IMAGE_COLUMNS, TEXT_COLUMNS
    from .multimodal_vocab import max_length, words

    templates = "\n".join(f"{k}. `{t}`" for k, t in enumerate(mt.PHRASES))
    return f"""### Text (Multimodal3DIdent)

This is a Multimodal3DIdent variant (Daunhawer et al., ICLR 2023): every image has a sentence naming its
object's shape, grid position (x: {', '.join(mt.XPOS)}; y: {', '.join(mt.YPOS)}) and colour. The colour is the
name of the entry nearest to the object's hue (HSV(h, 1, 1), in RGB) of a palette drawn per sample from
matplotlib's TABLEAU, CSS4 and XKCD colours ({len(mt.color_names()):,} names; `object_color_index` is the
position in their sorted union); the phrasing is one of five templates:

{templates}

Release layout (`c3di export FILE.h5 DIR --format multimodal3dident`): `images/*.png`, `text/text_raw.txt`,
`latents_image.csv` ({', '.join(IMAGE_COLUMNS)}) and `latents_text.csv` ({', '.join(TEXT_COLUMNS)}).
Vocabulary of `causal3dident.multimodal_vocab`: {len(words()):,} tokens, sentences padded to {max_length()}.
Cite it as the citation below says, first (`daunhawer2023multimodal`).
"""


def _no_section() -> str:
    return ""


@dataclass(frozen=True)
class CardVariant:
    """What the card, the datasheet and croissant.json say differently for one dataset the scene can make."""

    name: str  # the pretty name; lower-cased, the name of its canonical preset
    paper_url: str
    bibtex: str  # the paper that introduced it, cited first
    tags: tuple[str, ...]
    summary: str  # str.format template: preset, interventions, splits, what, resolution, version
    curated_by: str
    rationale: str
    citation_after: str  # what the citation adds after this generator's BibTeX
    motivation: str  # the datasheet's purpose and creators
    used_for: str  # the datasheet's "tasks it has been used for"
    rai: Mapping[str, Any]  # Responsible-AI answers that replace the shared ones
    section: Callable[[], str] = _no_section  # its own section of the README, after the factors


CAUSAL3DIDENT = CardVariant(
    name="Causal3DIdent",
    paper_url=PAPER_URL,
    bibtex=PAPER_BIBTEX,
    tags=TAGS,
    summary=("Synthetic images of one of seven 3-D objects under a coloured spotlight, each rendered from ten "
             "continuous latents (object position, rotation, spotlight position, object/spotlight/background hue) "
             "and a class that are sampled from a structural causal model (preset '{preset}'{interventions}). "
             "{splits} {what}, {resolution}. Causal3DIdent was introduced by von Kügelgen et al. "
             "(NeurIPS 2021) to test whether self-supervised learning identifies the content latents; this "
             "variant was generated by the causal3dident package {version}."),
    curated_by=("the causal3dident developers, after von Kügelgen, Sharma, Gresele et al. (2021), whose\n"
                "  renderer and latent sampler were never released; this package re-implements them from the paper "
                "(App. B-D)\n  and the public 3DIdent renderer (cl-ica, Zimmermann et al., 2021)."),
    rationale=("To test identifiability results for self-supervised learning when the latents are statistically and "
               "causally\ndependent, on images whose generating factors are known exactly."),
    citation_after="",
    motivation=("- **For what purpose was the dataset created?** To test whether self-supervised learning with data\n"
                "  augmentations or latent transformations recovers the content latents of an image when the latents "
                "depend on\n  each other causally (von Kügelgen et al., NeurIPS 2021). The original generator was not "
                "released; this\n  project re-implements it so that the dataset and variants of it can be generated "
                "and documented.\n"
                "- **Who created it, and on behalf of whom?** The dataset was designed by von Kügelgen, Sharma, "
                "Gresele et al.;\n  this generator and these files are made by the causal3dident developers."),
    used_for=("the identifiability experiments of von Kügelgen et al. (2021): content\n"
              "  encoders trained with InfoNCE on pairs, evaluated by predicting each latent from the representation."),
    rai={},
)

MULTIMODAL3DIDENT = CardVariant(
    name="Multimodal3DIdent",
    paper_url=MULTIMODAL_PAPER_URL,
    bibtex=MULTIMODAL_BIBTEX,
    tags=(*TAGS, *MULTIMODAL_TAGS),
    summary=("Image/text pairs: synthetic images of one of seven 3-D objects on a 3 x 3 grid under a coloured "
             "spotlight, each with a sentence naming the object's shape, position and colour. The images are "
             "rendered from ten latents (grid position, rotation, spotlight position, object/spotlight/background "
             "hue) and a class sampled from a structural causal model (preset '{preset}'{interventions}); "
             "the sentences say the shared latents in a palette and phrasing drawn per sample. {splits} {what}, "
             "{resolution}. Multimodal3DIdent was introduced by Daunhawer et al. (ICLR 2023, "
             "\"Identifiability Results for Multimodal Contrastive Learning\", arXiv:2303.09166) to test which "
             "factors multimodal contrastive learning identifies; this variant was generated by the causal3dident "
             "package {version}, which makes Multimodal3DIdent on the same renderer, store and "
             "loader as Causal3DIdent. Its scene descends from Causal3DIdent (von Kügelgen et al., NeurIPS 2021)."),
    curated_by=("the causal3dident developers, after Daunhawer, Bizeul, Palumbo, Marx and Vogt (2023), whose "
                "generator (github.com/imantdaunhawer/Multimodal3DIdent, Blender 2.90.1) this package re-implements on "
                "its own renderer, store and loader; the scene descends from Causal3DIdent (von Kügelgen et al., "
                "2021) and the public 3DIdent renderer (cl-ica, Zimmermann et al., 2021)."),
    rationale=("To test identifiability results for multimodal contrastive learning: which latent factors an image "
               "encoder and a text encoder trained together recover, when some factors are shared by both modalities "
               "(shape, position; colour, dependent but not one-to-one) and others belong to one (rotations, "
               "spotlight and background; the phrasing)."),
    citation_after=("\n\nIts scene comes from Causal3DIdent; cite that paper second:\n\n```bibtex\n"
                    f"{PAPER_BIBTEX}\n```"),
    motivation=("- **For what purpose was the dataset created?** To test which latent factors multimodal contrastive\n"
                "  learning identifies from paired images and sentences (Daunhawer et al., ICLR 2023). This project\n"
                "  generates it on the same renderer, store and loader as Causal3DIdent, whose scene it descends "
                "from.\n"
                "- **Who created it, and on behalf of whom?** The dataset was designed by Daunhawer, Bizeul, Palumbo,\n"
                "  Marx and Vogt; this generator and these files are made by the causal3dident developers."),
    used_for=("the experiments of Daunhawer et al. (2023): an image and a text encoder trained with a\n"
              "  symmetric InfoNCE, every factor of both modalities predicted from the encodings."),
    rai={
        "preprocessing": ("None. Images are stored as rendered, latents as sampled, sentences as generated; both of "
                          "the release's latent tables (its units: grid {0, 1, 2}, the rest in [0, 1]) are stored "
                          "beside the raw latents, under /multimodal."),
        "use_cases": [
            "Testing identifiability results for multimodal (image/text) contrastive learning: which shared and "
            "modality-specific factors the two encoders recover.",
            "Benchmarks of image-text representation learning with known ground-truth latents of both modalities.",
            "Out-of-distribution evaluation under interventions on the SCM (c3di latents --intervene).",
        ],
        "biases": [
            "The sentences name only shape, grid position and colour: rotations, spotlight and background are never "
            "described.",
            "Colour names come from three palettes of very different sizes (TABLEAU 10, CSS4 148, XKCD 949 names), "
            "one drawn uniformly per sample, so one hue has several names; the spotlight and background hues span "
            "a quarter of the colour circle ((u - 0.5) / 2).",
            "Seven meshes, one object per image, one fixed camera and ground plane: no clutter, occlusion or texture.",
        ],
        "limitations": [
            "Synthetic and non-photorealistic, with sentences from five templates: results do not transfer to "
            "natural images or language without further evidence.",
            "Renders use this project's meshes, camera and object size, not the release's Blender 2.90.1 scene: "
            "they are not pixel-identical to Zenodo 7678231; compare with published numbers with care.",
        ],
    },
    section=_multimodal_section,
)

VARIANTS: dict[str, CardVariant] = {"multimodal3dident": MULTIMODAL3DIDENT}  # by scene; any other: Causal3DIdent


def variant(facts: DatasetFacts) -> CardVariant:
    """The dataset the card describes, chosen by its preset's scene."""
    return VARIANTS.get(getattr(facts.scm, "scene", "causal3dident"), CAUSAL3DIDENT)


def paper_url(facts: DatasetFacts) -> str:
    """The paper that introduced the dataset this variant is of."""
    return variant(facts).paper_url


def citation_bibtex(facts: DatasetFacts) -> str:
    """The dataset paper's BibTeX (croissant.json's citeAs)."""
    return variant(facts).bibtex


def tags(facts: DatasetFacts) -> list[str]:
    return list(variant(facts).tags)


# -- shared phrases ----------------------------------------------------------------------------------
def pretty_name(facts: DatasetFacts) -> str:
    """``Causal3DIdent`` (or ``Multimodal3DIdent``) for the canonical release, else with the preset and split names."""
    name = variant(facts).name
    if facts.canonical and facts.preset_name == name.lower():
        return name
    return f"{name} ({facts.preset_name}: {', '.join(s.name for s in facts.splits)})"


def _resolution(facts: DatasetFacts) -> str:
    return f"{facts.resolution} x {facts.resolution} px" if facts.has_images else "not rendered yet"


def summary(facts: DatasetFacts) -> str:
    """One paragraph: what the dataset is and what this variant holds."""
    return variant(facts).summary.format(
        preset=facts.preset_name,
        interventions="" if not facts.interventions else f" under the interventions {'; '.join(facts.interventions)}",
        splits=", ".join(f"{s.num_examples:,} {s.name}" for s in facts.splits),
        what="images" if facts.has_images else "latent samples (images not rendered yet)",
        resolution=_resolution(facts), version=facts.package_version)


def license_text() -> str:
    """The data licence: the renders inherit the terms of the meshes they show."""
    terms = "; ".join(f"{m['name']}: {m['license']}" for m in meshes())
    return (f"Research use. The images show seven third-party meshes whose terms apply to them ({terms}). "
            f"Latents and metadata: no restriction beyond the meshes' terms. Generator code: MIT.")


def project_bibtex(facts: DatasetFacts, year: str) -> str:
    return ("@software{causal3dident_generator,\n"
            "  title   = {causal3dident: reference generator, loader and benchmark for Causal3DIdent},\n"
            "  author  = {{causal3dident developers}},\n"
            f"  version = {{{facts.package_version}}},\n"
            f"  year    = {{{year}}}\n"
            "}")


def _generation(facts: DatasetFacts) -> str:
    seed = "the seed recorded in each file" if facts.seed is None else f"seed {facts.seed}"
    pairs = ", ".join(f"{p['name']} ({p['mode']}, sigma {p['sigma']:g})" for p in facts.pairs) or "none stored"
    render = json.dumps(facts.render_settings, sort_keys=True) if facts.render_settings else "not rendered"
    return (f"Latents and classes are sampled from the SCM of preset '{facts.preset_name}' with {seed}; every value "
            f"is the inverse CDF of its distribution at a uniform drawn from a counter-based stream keyed by "
            f"(seed, sample index), so any file can be regenerated exactly and shards merge into the single-machine "
            f"file. Interventions: {'; '.join(facts.interventions) or 'none'}. Latent-transformation pairs: {pairs}. "
            f"Rendering: {render}.")


def responsible_ai(facts: DatasetFacts) -> dict[str, Any]:
    """Answers to the Responsible-AI questions, shared by the card, the datasheet and croissant.json."""
    return {
        "collection": ("No data was collected: every sample is generated. " + _generation(facts)),
        "missing": ("None: every sample has its class and all ten latents."
                    + ("" if facts.has_images else " Images are missing until the file is rendered (c3di render).")),
        "raw_data": ("The raw data are the generating latents themselves (float32 in [-1, 1]) and the rendered "
                     "images (uint8 RGB); the seven meshes come from public repositories (see the card's mesh table)."),
        "preprocessing": ("None. Images are stored as rendered, latents as sampled; the mapping to scene units "
                          "(positions x 3, angles x pi/2, hues / 4 wrapped to [0, 1)) is documented, not applied."),
        "annotation": ("Labels are not annotated but generated: class and latents are the exact parameters the "
                       "renderer received for each image, written by the generator next to the image."),
        "use_cases": [
            "Testing whether (self-supervised) representation learning identifies content and style latents.",
            "Causal representation learning and disentanglement benchmarks with known ground-truth latents.",
            "Out-of-distribution evaluation under interventions on the SCM (c3di latents --intervene).",
        ],
        "biases": [
            "Hues span only half of the colour circle (raw / 4 in [-0.25, 0.25]: violet through red to yellow-green); "
            "greens, cyans and blues never occur.",
            "The SCM couples class with pose, position and hue: the class can be predicted from style latents, "
            "so class accuracy partly reflects these shortcuts.",
            "Seven meshes, one object per image, one fixed camera and ground plane: no clutter, occlusion or texture.",
        ],
        "limitations": [
            "Synthetic and non-photorealistic: results do not transfer to natural images without further evidence.",
            "Renders are not pixel-identical to the original 2021 release (different Blender version, mesh copies "
            "and hue wrapping); compare with published numbers with care.",
            "Latent-transformation pairs render the transformed latents exactly, whereas the original matched "
            "the nearest image of the same class in latent space.",
        ],
        "social_impact": ("Low direct risk: no people or personal data. Rendering costs energy (the original "
                          "reported about 150 GPU-hours for 275,000 images); reuse rendered files where possible."),
        "personal": ("None. No people are depicted; the 'head' class is a scanned sculpture (bust of Max Planck), "
                     "a historical public figure's likeness, not personal data."),
        "maintenance": ("Maintained by the causal3dident developers with the generator: files carry schema_version "
                        "and package_version; `c3di verify` re-derives latents from the recorded config and seed; "
                        "cards are regenerated with `c3di card FILE.h5 --out DIR`."),
        **deepcopy(dict(variant(facts).rai)),  # copied: every caller gets its own lists, as with the shared ones
    }


# -- tables --------------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def factors_table(facts: DatasetFacts) -> str:
    rows = [[r["index"] if r["index"] is not None else "-", f"`{r['name']}`", r["type"],
             r.get("scene_units", ", ".join(CLASS_NAMES)), ", ".join(r["parents"]) or "-",
             f"`{r['structural_equation']}`"] for r in factor_table(facts.scm)]
    return _table(["col", "factor", "type", "scene units", "parents", "structural equation"], rows)


def _types_note(facts: DatasetFacts) -> str:
    circular = [r["name"] for r in factor_table(facts.scm) if r["type"] == "circular"]
    return ("Types: `continuous` latents do not wrap; `circular` ones cover a full turn of their angle or hue "
            f"circle and wrap: {', '.join(circular) or 'none here (the angles and hues span half a turn)'}.")


def statistics_tables(facts: DatasetFacts) -> str:
    counts = facts.class_counts()
    classes = _table(["class"] + list(CLASS_NAMES), [["samples"] + [f"{counts[c]:,}" for c in CLASS_NAMES]])
    latents = _table(["latent", "mean", "std", "min", "max"],
                     [[f"`{s['name']}`", f"{s['mean']:+.3f}", f"{s['std']:.3f}", f"{s['min']:+.3f}", f"{s['max']:+.3f}"]
                      for s in facts.latent_statistics()])
    edges = _table(["parent", "child", "mutual information (bits)", "Spearman", "Spearman within class (strongest)"],
                   [[e["parent"], e["child"], _number(e["mutual_information_bits"]), _number(e["spearman"]),
                     "n/a" if e["class"] is None else f"{_number(e['spearman_within_class'])} ({e['class']})"]
                    for e in edge_dependence(facts.scm.edges(), facts.latents, facts.classes)])
    return (f"Computed from {facts.statistics_source}.\n\n{classes}\n\n{latents}\n\n"
            f"Dependence along each edge of the causal graph (per-class mechanisms can cancel in the marginal "
            f"Spearman; mutual information and the within-class correlation show them):\n\n{edges}")


def meshes_table() -> str:
    return _table(["class", "mesh", "origin", "licence", "source (SHA-256)"],
                  [[m["class_index"], m["name"], m["origin"], m["license"],
                    f"[{m['url'].rsplit('/', 1)[-1]}]({m['url']}) (`{m['sha256'][:12]}...`)"] for m in meshes()])


def files_table(facts: DatasetFacts) -> str:
    rows = []
    for s in facts.splits:
        file = s.file
        rows.append([s.name, f"{s.num_examples:,}", f"`{file.name if file else s.name + '.h5'}`",
                     f"{file.size:,}" if file else "depends on the rendering",
                     f"`{file.sha256}`" if file else "in each rendered file's card"])
    return _table(["split", "samples", "HDF5 file", "bytes", "SHA-256"], rows)


# -- README --------------------------------------------------------------------------------------------
def _citation(facts: DatasetFacts, year: str) -> str:
    v = variant(facts)
    return (f"Cite the paper that introduced {v.name}:\n\n```bibtex\n{v.bibtex}\n```\n\nand this generator:\n\n"
            f"```bibtex\n{project_bibtex(facts, year)}\n```{v.citation_after}")


def _size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < bound:
            return label
    return "10M<n<100M"


def _header(facts: DatasetFacts) -> dict[str, Any]:
    features: list[dict[str, Any]] = [{"name": "image", "dtype": "image"}] if facts.has_images else []
    features += [{"name": "index", "dtype": "int64"},
                 {"name": "class", "dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(CLASS_NAMES)}}}},
                 {"name": "class_name", "dtype": "string"}]
    features += [{"name": n, "dtype": "float32"} for n in LATENT_NAMES]
    splits = [{"name": s.name, "num_examples": s.num_examples, **({"num_bytes": s.file.size} if s.file else {})}
              for s in facts.splits]
    info: dict[str, Any] = {"features": features, "splits": splits}
    if all(s.file for s in facts.splits):
        info["dataset_size"] = sum(s.file.size for s in facts.splits if s.file)
    return {"license": "other", "license_name": "research-use-mesh-terms", "license_link": "datasheet.md",
            "pretty_name": pretty_name(facts), "tags": tags(facts), "annotations_creators": ["machine-generated"],
            "language_creators": ["machine-generated"], "source_datasets": ["original"],
            "size_categories": [_size_category(facts.num_examples)], "task_categories": list(HF_TASKS),
            "dataset_info": info}


def _figures(figures: list[str]) -> str:
    caption = {f: FIGURE_CAPTIONS.get(f, Path(f).stem.replace("_", " ")) for f in figures}
    return "\n\n".join(f"![{caption[f]}]({f})\n*{caption[f]}.*" for f in figures) or \
        "Draw them with `c3di figures FILE.h5 --out DIR`."


def _benchmark(heatmaps: list[str]) -> str:
    if not heatmaps:
        return ("Run `c3di bench sweep` and `c3di bench leaderboard`, then `c3di card ... --leaderboard FILE` to show "
                "the results here.")
    shown = "\n\n".join(f"![Benchmark heatmap: {h}]({h})" for h in heatmaps)
    return ("SimCLR trained on each setting of the paper's Table 1 (rows), every factor regressed from the learned "
            "representation (columns: R^2 of kernel ridge; class: logistic accuracy). Content factors should be "
            "high, style factors low. The full table beside the paper's numbers: benchmarks/LEADERBOARD.md in the "
            "project.\n\n" + shown)


def readme(facts: DatasetFacts, figures: list[str], date: str, heatmaps: list[str] | None = None) -> str:
    """The Hugging Face style dataset card (README.md): ``figures`` drawn beside it, ``date`` YYYY-MM-DD,
    ``heatmaps``: benchmark heatmap files beside it."""
    v, rai = variant(facts), responsible_ai(facts)
    yaml_header = yaml.safe_dump(_header(facts), sort_keys=False, allow_unicode=True, width=1000)
    source = f"`c3di card --preset {facts.preset_name}`" if facts.path is None else f"`c3di card {facts.path.name}`"
    bullets = "\n".join
    return f"""---
{yaml_header}---

# {pretty_name(facts)}

{summary(facts)}

*Generated by {source}; regenerate rather than edit.*

## Dataset details

- **Curated by:** {v.curated_by}
- **Paper:** [{v.paper_url}]({v.paper_url})
- **Licence:** {license_text()}
- **Annotations:** machine-generated: {rai['annotation']}

## Uses

### Direct use

{bullets(f"- {u}" for u in rai['use_cases'])}

### Out-of-scope use

- Any inference about the real world, people or natural images; deploying models trained only on these images.
- A photorealism or visual-quality benchmark.
- Uses the mesh licences exclude (most meshes are licensed for research only).

## Dataset structure

Each sample is one image of one object, its class (0-6: {', '.join(CLASS_NAMES)}) and the ten raw latents in
[-1, 1] that generated it. Files: one HDF5 file per split (schema v1: `/images`, `/latents`, `/classes`,
`/index`, `/pairs/<t>/...`; see docs/hdf5_schema.md in the project), and, after
`c3di export FILE.h5 DIR --format csv`, `DIR/images/<split>/<index:06d>.png` with `DIR/<split>.csv`
(columns `index, file, class, class_name, {', '.join(LATENT_NAMES)}`), which croissant.json describes
(`--format parquet` writes the same table as `DIR/<split>.parquet`; `c3di card --table parquet` describes
that). Latent-transformation pairs are stored in the HDF5 file only.

{files_table(facts)}

### Factors

{factors_table(facts)}

Per-class means and every parameter: factors.yaml. {_types_note(facts)}

{v.section()}
### Statistics

{statistics_tables(facts)}

### Figures

{_figures(figures)}

### Benchmark

{_benchmark(heatmaps or [])}

## Dataset creation

### Curation rationale

{v.rationale}

### Source data and generation

{_generation(facts)}

Meshes:

{meshes_table()}

### Personal and sensitive information

{rai['personal']}

## Bias, risks, and limitations

{bullets(f"- {b}" for b in rai['biases'] + rai['limitations'])}

### Recommendations

Report which preset, interventions and seed a result used (all recorded in each file and in this card), and
evaluate on held-out files generated with another seed.

## Citation

{_citation(facts, date[:4])}

## More information

Datasheet: datasheet.md. Factors: factors.yaml. Croissant metadata: croissant.json.
"""


# -- datasheet -----------------------------------------------------------------------------------------
def datasheet(facts: DatasetFacts) -> str:
    """Answers to the seven sections of "Datasheets for Datasets" (Gebru et al., 2021) for this variant."""
    v, rai = variant(facts), responsible_ai(facts)
    splits = ", ".join(f"{s.name}: {s.num_examples:,}" for s in facts.splits)
    bullets = "\n".join
    return f"""# Datasheet: {pretty_name(facts)}

Answers to "Datasheets for Datasets" (Gebru et al., 2021) for this dataset as causal3dident
{facts.package_version} generates it. Regenerate with `c3di card`.

## 1. Motivation

{v.motivation}
- **Who funded the creation?** Not recorded for this generator.

## 2. Composition

- **What do the instances represent?** One rendered image of one object in a fixed scene with a coloured
  spotlight, with the class and the ten latents that generated it.
- **How many instances are there?** {facts.num_examples:,} ({splits}); images {_resolution(facts)}.
- **Is it a sample of a larger set?** It is a finite sample from a continuous distribution (the SCM); any
  number of further samples can be generated, and a sample index with the seed determines its latents.
- **What data does each instance consist of?** Image (uint8 RGB), class (int64), ten raw latents (float32),
  and the global sample index; optionally transformed latents (and images) of latent-transformation pairs.
- **Is there a label?** The class and all latents are exact, generated labels.
- **Is any information missing?** {rai['missing']}
- **Are relationships between instances explicit?** A pair's second view shares the anchor's row and index.
- **Are there recommended splits?** {splits}. Each split is its own file; generate them with different
  seeds so that they are independent samples.
- **Errors, noise or redundancy?** Latents are exact. Images carry Monte-Carlo render noise (reduced by
  denoising); two samples can have near-identical latents and so near-identical images.
- **Self-contained?** Yes; the meshes are only needed to render more images.
- **Confidential, offensive or sensitive content; does it identify people?** {rai['personal']}

## 3. Collection process

- **How was the data acquired?** {rai['collection']}
- **Sampling strategy:** the SCM, with the class balanced in expectation (weights
  {', '.join(f"{c} {w:.3f}" for c, w in zip(CLASS_NAMES, facts.scm.class_weights))}).
- **Who was involved, and how were they compensated?** No people; the generator and renderer run unattended.
- **Timeframe:** {facts.created or 'whenever the files are generated; each file records its creation time'}.
- **Ethical review, consent, individuals:** not applicable: no people or personal data.

## 4. Preprocessing, cleaning, labelling

- {rai['preprocessing']}
- {rai['annotation']}
- **Is the raw data saved?** The latents are the raw data and are stored with every image; the config and
  seed that generated them are recorded in each file (`c3di info`, `c3di verify`).
- **Software:** causal3dident {facts.package_version} (`c3di latents`, `c3di render`), Blender for rendering.

## 5. Uses

- **Tasks it has been used for:** {v.used_for}
- **Other tasks it could be used for:**
{bullets(f"  - {u}" for u in rai['use_cases'])}
- **Could its composition or collection affect future uses?**
{bullets(f"  - {b}" for b in rai['biases'] + rai['limitations'])}
- **Tasks it should not be used for:** inference about people or the real world; deployment of models trained
  only on it; a photorealism benchmark; uses the meshes' licences exclude.

## 6. Distribution

- **How is it distributed?** As HDF5 files (one per split) and, via `c3di export`, as PNG images with CSV
  tables; croissant.json describes both. Anyone with the package can regenerate a variant instead.
- **Licence and terms of use:** {license_text()}
- **Third-party restrictions:** the meshes' terms (table in README.md).
- **Export controls or regulatory restrictions:** none known.

## 7. Maintenance

- **Who maintains it?** {rai['maintenance']}
- **Will it be updated?** New versions of the generator may change renders; the file format is versioned
  (schema_version) and readers refuse versions they do not know.
- **Can others contribute or build on it?** Yes: edit a copy of the preset (`c3di presets show causal3dident`),
  generate, and ship the card `c3di card` writes with the files.
"""
