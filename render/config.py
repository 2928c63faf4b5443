"""Every constant of the Causal3DIdent scene and of Cycles, in one place, with the paper's values as defaults.

The scene follows cl-ica's ``tools/3dident`` renderer (Blender 2.91, derived from CLEVR), which the
Causal3DIdent paper used; where that code or the paper leaves a value open, the field's comment
says what we chose and why. ``RenderConfig`` is JSON-able: it is recorded in every rendered file
as the root attribute ``render_settings`` and must match when a job resumes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import Field

from ..errors import ConfigError
from ..schema import (Float, Int, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, apply_assignments,
                      config_schema)

Quality = Literal["paper", "fast", "preview"]
"""Names of the quality presets (``QUALITY_PRESETS``)."""
HINT = "fix --resolution, --quality or the --set value"
Fraction = Annotated[Float, Field(ge=0, le=1)]
Vector = tuple[Float, Float, Float]


@config_schema(source="render settings", hint=HINT)
class RenderConfig:
    """Scene and sampler settings: defaults are the paper's (quality preset ``paper``, 224 px).

    A typed schema: unknown names, wrong types and out-of-range values are one-line ConfigErrors.
    """

    resolution: Annotated[Int, Field(ge=8, le=8192)] = 224
    """Image width = height in pixels (paper: 224)."""

    # -- Cycles ---------------------------------------------------------------------------------
    samples: PositiveInt = 512
    """Path-tracing samples per pixel (paper: 512)."""
    adaptive_sampling: bool = False
    """Stop sampling converged pixels early (Blender 2.91's default: off)."""
    adaptive_threshold: NonNegativeFloat = 0.01
    """Noise level at which adaptive sampling stops a pixel (Blender's default)."""
    adaptive_min_samples: NonNegativeInt = 0
    """Samples before adaptive sampling may stop a pixel (0: Blender picks)."""
    denoise: bool = True
    """Denoise the final image (paper: on, 'to make spot lights look nicer'); Blender 5 uses OpenImageDenoise."""
    denoiser_prefilter: Literal["NONE", "FAST", "ACCURATE"] = "ACCURATE"
    """OpenImageDenoise prefilter of the albedo/normal passes (Blender's default)."""
    denoiser_quality: Literal["HIGH", "BALANCED", "FAST"] = "HIGH"
    """OpenImageDenoise quality (Blender's default)."""
    denoising_input_passes: Literal["RGB", "RGB_ALBEDO", "RGB_ALBEDO_NORMAL"] = "RGB_ALBEDO_NORMAL"
    """Passes the denoiser reads besides the noisy image (Blender's default: albedo and normal).
    Recorded only when not the default, so earlier files' settings are unchanged."""
    sampling_pattern: Literal["AUTOMATIC", "TABULATED_SOBOL", "BLUE_NOISE"] = "TABULATED_SOBOL"
    """Cycles' sampling pattern (bpy's default; blue noise spreads low-sample noise to high frequencies, which
    denoises better). Recorded only when not the default, so earlier files' settings are unchanged."""
    max_bounces: NonNegativeInt = 0
    """Light bounces (paper: 0, direct light only, 'disable reflections')."""
    transparent_max_bounces: NonNegativeInt = 8
    """Transparent bounces (paper: 8; nothing in the scene is transparent)."""
    blur_glossy: NonNegativeFloat = 2.0
    """Cycles' filter glossy (paper: 2.0)."""
    seed: NonNegativeInt = 0
    """Cycles' sampling seed, fixed so that the same latents give the same pixels."""
    light_tree: bool = False
    """Cycles' light tree (Blender >= 3.5; 2.91 had none). Off: with three lights it saves about a
    fifth of the time per sample, about what it gains in noise."""
    pixel_filter_width: PositiveFloat = 1.5
    """Blackman-Harris pixel filter width in pixels (Blender's default)."""

    # -- colour management --------------------------------------------------------------------
    view_transform: str = "Standard"
    """View transform (paper: Standard, i.e. plain sRGB; Blender's default would be Filmic/AgX)."""
    dither: NonNegativeFloat = 0.0
    """Dither noise added when quantising to 8 bits; 0 keeps pixels an exact function of the latents
    (Blender's default 1.0 adds +-0.5/255 of noise, invisible at this scale)."""

    # -- camera ---------------------------------------------------------------------------------
    camera_location: Vector = (8.0, 0.0, 8.0)
    """Camera position; it looks at the world origin (paper scene)."""
    lens_mm: PositiveFloat = 35.0
    """Focal length (paper scene: 35 mm)."""
    sensor_mm: PositiveFloat = 50.0
    """Sensor width (paper scene: 50 mm): a wide view, 71 deg across."""

    # -- object ---------------------------------------------------------------------------------
    object_size: PositiveFloat = 6.0
    """Largest bounding-box side of every mesh after normalisation, in scene units. As in the original,
    it also sets the ground's depth below the origin (-size), the object's lift (+size/2) and the
    spotlight's extra height (+size). The original's mesh scale is not recorded (its meshes were never
    released); 6 reproduces the published images: objects cover 4.3 % of the image in the median, as
    in the paper's sample figure (3 gives 1 %), with pools and shadows of the same proportions."""
    material_roughness: Fraction = 0.4
    """Roughness of the glossy layer of the rubber-like material of object and ground. The original used
    CLEVR's 'Rubber' node group: a diffuse base under a glossy coat, mixed by Fresnel. 0.4 reproduces
    the published images' darkening of the ground towards the horizon without spotlight glints."""
    material_ior: PositiveFloat = 1.5
    """Index of refraction of the Fresnel mix between diffuse base and glossy coat (rubber: about 1.5)."""
    glossy_distribution: Literal["GGX", "MULTI_GGX", "BECKMANN", "ASHIKHMIN_SHIRLEY"] = "GGX"
    """Microfacet model of the glossy coat: GGX, Blender 2.91's default (multiscatter GGX is slower)."""

    # -- ground (the background) ----------------------------------------------------------------
    ground_size: PositiveFloat = 1500.0
    """Side of the ground plane (paper: 1500, far beyond the frame)."""

    # -- lights ---------------------------------------------------------------------------------
    spot_energy_w: NonNegativeFloat = 3000.0
    """Spotlight power (paper: 3000 W)."""
    spot_cone_deg: Annotated[Float, Field(gt=0, le=180)] = 35.0
    """Spotlight cone, full angle (paper: 35 deg)."""
    spot_blend: Fraction = 0.1
    """Softness of the cone's edge (paper: 0.1)."""
    spot_soft_size: NonNegativeFloat = 0.5
    """Radius of the spotlight's emitter: soft shadow edges (paper: 0.5)."""
    spot_radius: NonNegativeFloat = 4.0
    """Radius of the spotlight's half circle around the z axis (paper: 4)."""
    spot_height: Float = 6.0
    """Spotlight height above the origin, plus ``object_size`` (paper: 6 + object size)."""
    area_location: Vector = (0.0, 0.0, 7.0)
    """Area light above the scene (paper's base scene)."""
    area_energy_w: NonNegativeFloat = 50.0
    """Area light power (paper's base scene: 50 W)."""
    area_size: PositiveFloat = 1.0
    """Area light side (paper's base scene: 1)."""
    sun_strength: NonNegativeFloat = 0.5
    """Sun strength in W/m^2 (paper's base scene: 0.5); it shines straight down (direction not recorded)."""
    world_color: tuple[NonNegativeFloat, NonNegativeFloat, NonNegativeFloat] = (0.0, 0.0, 0.0)
    """World (environment) colour (not recorded): black, because the published images show black
    where both the spotlight and the overhead lights are blocked; a grey world brightens the ground
    about 20 % beyond the published images."""

    # -- colours: HSV(hue, saturation, 1) with the hue from causal3dident.latents.hue_fraction ---
    object_saturation: Fraction = 1.0
    """Object colour saturation (paper: 1.0)."""
    spot_saturation: Fraction = 0.8
    """Spotlight colour saturation (paper: 0.8)."""
    ground_saturation: Fraction = 0.6
    """Background (ground) colour saturation (paper: 0.6)."""

    scene: Literal["causal3dident", "multimodal3dident"] = "causal3dident"
    """How raw latents become the scene: Causal3DIdent's, or Multimodal3DIdent's (grid positions with x and y as
    its text reads them, object hue (raw + 1) / 2; docs/multimodal.md). Set from the latents' preset by render
    jobs; recorded only when not the default, so earlier files' settings are unchanged."""

    quality: Quality = field(default="paper", compare=False)
    """Name of the quality preset these settings came from (informational)."""

    @property
    def spot_cone_rad(self) -> float:
        """Spotlight cone in radians (what Blender takes)."""
        return math.radians(self.spot_cone_deg)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings (tuples become lists); fields added later only when not their default."""
        out = json_ready(dataclasses.asdict(self))
        for name, default in RECORDED_WHEN_CHANGED.items():
            if out[name] == default:
                del out[name]
        return out

    def with_overrides(self, **changes: Any) -> RenderConfig:
        """A copy with some fields changed, validated: unknown names and bad values are a ``ConfigError``."""
        return dataclasses.replace(self, **changes)


RECORDED_WHEN_CHANGED: dict[str, Any] = {
    "scene": "causal3dident", "denoising_input_passes": "RGB_ALBEDO_NORMAL", "sampling_pattern": "TABULATED_SOBOL"}
"""Fields added after files were first rendered, with their defaults: ``to_dict`` leaves them out when at the
default, so that earlier files' ``render_settings`` (and the jobs that resume them) still match."""


def json_ready(value: Any) -> Any:
    """Tuples -> lists, recursively, so that a dict compares equal to its JSON round trip."""
    if isinstance(value, Mapping):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


QUALITY_PRESETS: dict[str, dict[str, Any]] = {
    # Blender 2.91's defaults as the paper used them: 512 samples, denoised, no adaptive sampling.
    "paper": {},
    # About 30x cheaper than 'paper' and at 224 px >= 38 dB for every image against a 2048-sample reference
    # (63 images, seeds 5-13: worst 38.24 dB, 31.9-32.2x; benchmarks/perf/render_quality.py, docs/rendering.md has
    # the table; 128 and 64 px fall short, and no setting measured reaches both there). With direct light only,
    # what noise is left after OpenImageDenoise sits on silhouettes, shadow edges and bright, clipped objects.
    # Blue-noise sampling costs nothing and lifts the worst images 0.7 dB over the Sobol pattern (which `fast`
    # used until 2026-11-30 and which left three of the 63 below 38 dB). The albedo and normal passes go to the
    # denoiser unfiltered (prefilter 'NONE'): cheaper than 'FAST' and, on these scenes, as good.
    # Measured and rejected: adaptive sampling (it pays off only far above this sample count), the light tree
    # (fewer samples needed, but each costs more: a wash), no denoiser (hundreds of samples needed), fewer
    # denoiser passes and the cheaper denoiser qualities (12 samples with 'BALANCED' pass at 224 px by 0.02 dB).
    # Measured on a 2-core CPU; on GPUs the denoiser costs relatively more and a few more samples without
    # it may pay off, which benchmarks/perf/render_quality.py --device cuda would show.
    "fast": {"samples": 10, "adaptive_sampling": False, "denoise": True, "denoiser_prefilter": "NONE",
             "sampling_pattern": "BLUE_NOISE"},
    # Tiny and noisy: for tests and quick looks only.
    "preview": {"samples": 4, "adaptive_sampling": False, "denoise": False},
}
"""Quality presets: overrides of ``RenderConfig``'s paper defaults."""


def render_config(quality: str = "paper", resolution: int = 224, **overrides: Any) -> RenderConfig:
    """The settings of a quality preset at a resolution, with optional further overrides."""
    if quality not in QUALITY_PRESETS:
        raise ConfigError(f"unknown --quality {quality!r}; choose one of {', '.join(QUALITY_PRESETS)}")
    settings = {**QUALITY_PRESETS[quality], **overrides}
    return RenderConfig(resolution=resolution, quality=quality).with_overrides(**settings)


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items of ``c3di render`` as render-setting overrides (``render_config`` validates them)."""
    overrides = apply_assignments({}, items)
    if "quality" in overrides:
        raise ConfigError("--set quality=...: use --quality (a quality is a preset of several settings)")
    if "resolution" in overrides:
        raise ConfigError("--set resolution=...: use --resolution")
    return overrides


def from_dict(data: Mapping[str, Any]) -> RenderConfig:
    """Inverse of ``RenderConfig.to_dict`` (lists become tuples again)."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return RenderConfig().with_overrides(**values)
