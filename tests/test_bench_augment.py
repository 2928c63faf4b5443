"""Batched augmentations: every sample draws its own parameters, and each op matches torchvision."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from causal3dident.augmentations import COLOUR, CROP_LARGE, CROP_SMALL
from causal3dident.benchmarks import augment as A


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_images(n: int, size: int = 32) -> torch.Tensor:
    """Varied, smooth colour images in [0, 1]."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = torch.stack([x, y, 0.5 + 0.5 * torch.sin(6 * x * y)])
    return (base.unsqueeze(0) * torch.linspace(0.5, 1.0, n).view(-1, 1, 1, 1)).clamp(0, 1)


def test_parameters_differ_across_the_batch():
    n = 64
    crop = A.sample_crop(n, 32, 32, CROP_SMALL, gen(), torch.device("cpu"))
    assert len(torch.unique(crop.boxes, dim=0)) > n * 0.9
    assert 0 < crop.flip.sum() < n
    colour = A.sample_colour(n, COLOUR, gen(), torch.device("cpu"))
    for factor in (colour.brightness, colour.contrast, colour.saturation, colour.hue):
        assert len(torch.unique(factor)) == n
    assert len(torch.unique(colour.order, dim=0)) > 10  # many of the 24 jitter orders occur
    assert 0 < colour.jitter.sum() < n and 0 < colour.grayscale.sum() < n
    first, second = A.sample_rotation_pair(n, 4, gen(), torch.device("cpu"))
    assert (first != second).all() and len(torch.unique(first)) == 4 and len(torch.unique(second)) == 4


def test_identical_images_get_different_views():
    x = smooth_images(1).expand(16, -1, -1, -1).contiguous()
    for names in (["crop_large"], ["colour"], ["rotation"], ["crop_small", "colour"]):
        v1, v2 = A.PairAugmenter(names, 32)(x, x, gen(1))
        distinct = {tuple(v.flatten()[::97].tolist()) for v in v1}
        assert len(distinct) >= (3 if names == ["rotation"] else 12), names  # not one draw shared by the batch
        if names == ["rotation"]:
            assert not any(torch.equal(a, b) for a, b in zip(v1, v2))  # the views' angles always differ


def test_crop_sample_areas_follow_the_scale_range():
    boxes = A.sample_crop(2000, 64, 64, CROP_LARGE, gen(), torch.device("cpu")).boxes
    area = boxes[:, 2] * boxes[:, 3] / 64 ** 2
    assert area.min() > 0.75 and area.max() <= 1.0
    assert (boxes[:, 0] + boxes[:, 2] <= 64).all() and (boxes[:, 1] + boxes[:, 3] <= 64).all()


def test_full_box_is_identity_and_flip_mirrors():
    x = smooth_images(3)
    full = torch.tensor([[0.0, 0.0, 32.0, 32.0]] * 3)
    same = A.apply_crop(x, A.CropParams(full, torch.tensor([False, False, False])), 32)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    flipped = A.apply_crop(x, A.CropParams(full, torch.tensor([True, False, True])), 32)
    torch.testing.assert_close(flipped[0], x[0].flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(flipped[1], x[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("box, flip", [((8, 16, 32, 24), False), ((3, 5, 58, 50), True), ((0, 0, 64, 64), False)])
def test_crop_resamples_like_the_originals_pil_pipeline(box, flip):
    """Same box and flip as torchvision's PIL RandomResizedCrop(bicubic) + flip: equal up to PIL's uint8
    rounding on smooth images; on noise, only where PIL clips an overshoot between its passes."""
    for image, max_err in ((smooth_images(1, 64), 2 / 255), (torch.rand(1, 3, 64, 64, generator=gen(5)), 1.0)):
        x = (image * 255).round() / 255
        ref = TF.resized_crop(TF.to_pil_image(x[0]), *box, [48, 48], interpolation=TF.InterpolationMode.BICUBIC)
        ref = TF.to_dtype(TF.to_image(TF.horizontal_flip(ref) if flip else ref), torch.float32, scale=True)
        ours = A.apply_crop(x, A.CropParams(torch.tensor([box], dtype=torch.float32), torch.tensor([flip])), 48)[0]
        assert (ours - ref).abs().max() <= max_err and (ours - ref).abs().mean() < 0.6 / 255


@pytest.mark.parametrize("op, ref", [
    (A.adjust_brightness, TF.adjust_brightness),
    (A.adjust_contrast, TF.adjust_contrast),
    (A.adjust_saturation, TF.adjust_saturation),
    (A.adjust_hue, TF.adjust_hue),
])
def test_jitter_ops_match_torchvision_per_sample(op, ref):
    x = smooth_images(4)
    factors = torch.tensor([0.3, 0.9, 1.4, 1.8]) if op is not A.adjust_hue else torch.tensor([-0.2, -0.05, 0.1, 0.2])
    ours = op(x, factors)
    for i in range(4):
        torch.testing.assert_close(ours[i], ref(x[i], float(factors[i])), atol=2e-5, rtol=0)


def test_colour_applies_each_samples_own_order():
    x = smooth_images(2)
    params = A.ColourParams(jitter=torch.tensor([True, True]), order=torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]]),
                            brightness=torch.tensor([1.5, 1.5]), contrast=torch.tensor([0.5, 0.5]),
                            saturation=torch.tensor([1.7, 1.7]), hue=torch.tensor([0.1, 0.1]),
                            grayscale=torch.tensor([False, True]))
    out = A.apply_colour(x, params)
    first = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(x[0], 1.5), 0.5), 1.7), 0.1)
    second = TF.adjust_brightness(TF.adjust_contrast(TF.adjust_saturation(TF.adjust_hue(x[1], 0.1), 1.7), 0.5), 1.5)
    torch.testing.assert_close(out[0], first, atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1], TF.rgb_to_grayscale(second, 3), atol=1e-4, rtol=0)


def test_rotation_is_counter_clockwise_quarter_turns():
    x = smooth_images(4)
    out = A.apply_rotation(x, torch.tensor([0, 1, 2, 3]))
    for k in range(4):
        assert torch.equal(out[k], torch.rot90(x[k], k, dims=(1, 2)))
    assert torch.equal(out[1], TF.rotate(x[1], 90))
