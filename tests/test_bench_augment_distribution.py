"""The benchmark's batched ``PairAugmenter`` draws views from the same distribution as the dataset's ``DAPair``.

For one fixed image, N pairs from each pipeline are reduced to statistics that the augmentation's parameters
drive (crop area, aspect ratio, centre and flip; per-channel mean and spread after colour distortion, and the
grayscale rate; the two views' quarter turns) and compared with two-sample Kolmogorov-Smirnov and chi-square
tests. Seeds are fixed, so the outcome is deterministic; each check also shows the test rejects a pipeline
whose parameters are slightly off (p < 1e-6), so a pass means something.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from scipy import stats

from causal3dident.augmentations import NORMALIZE_MEAN, NORMALIZE_STD, ColourDistortion, Crop
from causal3dident.benchmarks import augment as A
from causal3dident.pairs import DAPair

SIZE = 48
PAIRS = 1000  # pairs per pipeline; both views are used (2,000 draws)
ALPHA = 1e-4  # per statistic; the mismatches planted below give p < 1e-6


def ramp() -> torch.Tensor:
    """uint8 [3, S, S]: red grows left to right, green top to bottom, so a view shows its crop box and flip."""
    ramp = ((torch.arange(SIZE) + 0.5) / SIZE * 255).round().to(torch.uint8)
    return torch.stack([ramp.view(1, -1).expand(SIZE, SIZE), ramp.view(-1, 1).expand(SIZE, SIZE),
                        torch.full((SIZE, SIZE), 128, dtype=torch.uint8)])


def colourful() -> torch.Tensor:
    """uint8 [3, S, S]: smooth, saturated, varied hues (as a rendered scene)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    image = torch.stack([0.2 + 0.7 * x, 0.3 + 0.5 * torch.sin(3 * y) ** 2, 0.9 - 0.6 * x * y])
    return (image * 255).round().to(torch.uint8)


def dataset_views(setting: str, image: torch.Tensor, image_format: str, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(view1s, view2s) as float [PAIRS, 3, S, S] in [0, 1] from ``DAPair`` (the dataset's transforms)."""
    torch.manual_seed(seed)
    pair = DAPair(setting)
    source = TF.to_pil_image(image) if image_format == "pil" else TF.to_image(image)
    views: list[list[torch.Tensor]] = [[], []]
    for _ in range(PAIRS):
        for k, view in enumerate(pair(source)):
            views[k].append(TF.to_dtype(TF.to_image(view), torch.float32, scale=True).as_subclass(torch.Tensor))
    return torch.stack(views[0]), torch.stack(views[1])


def batched_views(names: list[str], image: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(view1s, view2s) from the benchmark's ``PairAugmenter`` as ``Trainer.views`` calls it, un-normalised."""
    x = A.to_float(image.unsqueeze(0).expand(PAIRS, -1, -1, -1).contiguous())
    mean, std = torch.tensor(NORMALIZE_MEAN).view(1, 3, 1, 1), torch.tensor(NORMALIZE_STD).view(1, 3, 1, 1)
    v1, v2 = A.PairAugmenter(names, SIZE)(x, x, torch.Generator().manual_seed(seed))
    return v1 * std + mean, v2 * std + mean


def crop_boxes(views: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The crop box (top, left, height, width in pixels) and flip of each view of ``ramp()``.

    Away from the box's edges both resamplers reproduce a linear ramp, so a line fitted to the middle half of
    the output columns (rows) gives the box's left edge and width (top and height) to well under a pixel.
    """
    middle = torch.arange(SIZE // 4, 3 * SIZE // 4)
    centres = middle.double() + 0.5
    red = views[:, 0, middle][:, :, middle].double().mean(dim=1)  # [N, columns]
    green = views[:, 1, middle][:, :, middle].double().mean(dim=2)  # [N, rows]

    def fit(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        slope = ((centres - centres.mean()) * (values - values.mean(1, keepdim=True))).sum(1) \
            / ((centres - centres.mean()) ** 2).sum()
        return values.mean(1) - slope * centres.mean(), slope  # value at output coordinate 0, per output pixel

    (a_x, b_x), (a_y, b_y) = fit(red), fit(green)
    width, height = (b_x.abs() * SIZE ** 2), b_y * SIZE ** 2
    flipped = b_x < 0
    left = torch.where(flipped, a_x * SIZE - width, a_x * SIZE)
    boxes = torch.stack([a_y * SIZE, left, height, width], dim=1)
    return boxes.round().long().numpy(), flipped.numpy()


def crop_statistics(views: torch.Tensor) -> dict[str, np.ndarray]:
    """Area and aspect ratio of the box, its centre, and the flip."""
    boxes, flipped = crop_boxes(views)
    top, left, height, width = boxes.T
    return {"area": height * width / SIZE ** 2, "aspect": width / height, "centre_x": left + width / 2,
            "centre_y": top + height / 2, "flipped": flipped}


def colour_statistics(views: torch.Tensor, image: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-channel mean and standard deviation, whether the view is gray (R = G = B everywhere), and whether it is
    the uint8 ``image`` itself (neither jitter nor grayscale drawn).

    Views are first quantised to 8 bits, as the dataset's are: a view the distortion left alone (one in
    five) is then the very same image in both pipelines, not one that normalising and un-normalising moved
    by a rounding error (which a KS test would see as a shifted atom)."""
    levels = (views * 255).round()
    out = {f"mean_{c}": levels[:, k].mean(dim=(1, 2)).numpy() for k, c in enumerate("rgb")}
    out |= {f"std_{c}": levels[:, k].std(dim=(1, 2)).numpy() for k, c in enumerate("rgb")}
    out["gray"] = ((levels.amax(dim=1) - levels.amin(dim=1)).flatten(1).amax(1) <= 1).numpy()
    out["unchanged"] = (levels == image.float()).flatten(1).all(1).numpy()
    return out


def p_values(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict[str, float]:
    """KS for continuous statistics, chi-square (2 x 2) for yes/no ones."""
    out = {}
    for name, a in ours.items():
        b = theirs[name]
        if a.dtype == bool:
            table = np.array([[a.sum(), (~a).sum()], [b.sum(), (~b).sum()]])
            out[name] = float(stats.chi2_contingency(table).pvalue)
        else:
            out[name] = float(stats.ks_2samp(a, b).pvalue)
    return out


def both(views: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.cat(views)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=["pil", "tensor"])
def image_format(request) -> str:
    return request.param


@pytest.mark.parametrize("name", ["crop_small", "crop_large"])
def test_crops_draw_boxes_and_flips_as_the_dataset(name, image_format):
    spec = A.AUGMENTATIONS[name]
    x = A.to_float(ramp().unsqueeze(0).expand(2 * PAIRS, -1, -1, -1).contiguous())
    known = A.sample_crop(2 * PAIRS, SIZE, SIZE, spec, torch.Generator().manual_seed(2), x.device)
    boxes, flipped = crop_boxes(A.apply_crop(x, known, SIZE))
    assert (boxes == known.boxes.long().numpy()).all() and (flipped == known.flip.numpy()).all()  # read exactly
    reference = crop_statistics(both(dataset_views(name, ramp(), image_format)))
    ours = crop_statistics(both(batched_views([name], ramp())))
    p = p_values(ours, reference)
    assert min(p.values()) > ALPHA, p
    assert abs(reference["flipped"].mean() - 0.5) < 0.05 and abs(ours["flipped"].mean() - 0.5) < 0.05
    # the statistics tell a slightly different crop apart: aspect ratios from (0.6, 1.67) instead of (3/4, 4/3)
    # for small crops (large ones are bounded by the image), areas from 0.7 instead of 0.8 for large ones
    off_spec, statistic = {"crop_small": (Crop(scale=spec.scale, ratio=(0.6, 1 / 0.6)), "aspect"),
                           "crop_large": (Crop(scale=(0.7, 1.0)), "area")}[name]
    g = torch.Generator().manual_seed(1)
    off = crop_statistics(A.apply_crop(x, A.sample_crop(2 * PAIRS, SIZE, SIZE, off_spec, g, x.device), SIZE))
    assert p_values(off, reference)[statistic] < 1e-6


def test_colour_distortion_draws_as_the_dataset(image_format):
    image = colourful()
    reference = colour_statistics(both(dataset_views("colour", image, image_format)), image)
    ours = colour_statistics(both(batched_views(["colour"], image)), image)
    p = p_values(ours, reference)
    assert min(p.values()) > ALPHA, p
    for stats_ in (reference, ours):  # jitter with p 0.8, then grayscale with p 0.2
        assert abs(stats_["gray"].mean() - 0.2) < 0.03 and abs(stats_["unchanged"].mean() - 0.16) < 0.03
    # ... and tell apart a distortion applied with probability 0.7 instead of 0.8
    x = A.to_float(image.unsqueeze(0).expand(2 * PAIRS, -1, -1, -1).contiguous())
    params = A.sample_colour(2 * PAIRS, ColourDistortion(p=0.7), torch.Generator().manual_seed(1), x.device)
    off = p_values(colour_statistics(A.apply_colour(x, params), image), reference)
    assert off["unchanged"] < 1e-6, off


def quarter_turns(views: torch.Tensor, image: torch.Tensor) -> np.ndarray:
    """The k (0..3) with ``views[i] == rot90(image, k)``, for every view (-1 if none)."""
    turns = torch.stack([torch.rot90(image, k, dims=(1, 2)) for k in range(4)])  # [4, 3, S, S]
    error = (views.unsqueeze(1) - turns.unsqueeze(0)).abs().flatten(2).amax(2)  # [N, 4]
    best = error.argmin(1)
    return torch.where(error.min(1).values < 1e-5, best, -1).numpy()


def test_rotation_draws_the_two_distinct_angles_as_the_dataset(image_format):
    image = A.to_float(colourful())
    reference = [quarter_turns(v, image) for v in dataset_views("rotation", colourful(), image_format)]
    ours = [quarter_turns(v, image) for v in batched_views(["rotation"], colourful())]
    for first, second in (reference, ours):
        assert (first >= 0).all() and (second >= 0).all() and (first != second).all()
    cells = [(a, b) for a in range(4) for b in range(4) if a != b]
    table = np.array([[np.sum((first == a) & (second == b)) for a, b in cells] for first, second in (reference, ours)])
    assert stats.chi2_contingency(table).pvalue > ALPHA, table
    uniform = stats.chisquare(table.sum(0)).pvalue  # and both are uniform over the 12 ordered pairs
    assert uniform > ALPHA, table
