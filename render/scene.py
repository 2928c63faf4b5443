"""The Causal3DIdent scene in Blender, built from code: the only module that imports ``bpy``.

It is imported only inside worker processes (see ``worker``). ``SceneRenderer`` builds the scene
once (camera, lights, ground, all seven meshes, hidden but one), then renders many latents by
changing only what differs from the previous image.
"""

from __future__ import annotations

import colorsys
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import bpy
import numpy as np
from mathutils import Euler, Matrix, Vector

from ..latents import NUM_CLASSES, SCENE_MAPPINGS
from ..leftovers import process_alive
from ..multimodal import scene_units
from .assets import MeshAsset
from .config import RenderConfig
from .devices import DeviceSpec

class SceneRenderer:
    """A built scene that turns (latents, class) into uint8 [H, W, 3] images."""

    def __init__(self, config: RenderConfig, meshes: Sequence[MeshAsset], device: DeviceSpec,
                 threads: int = 0) -> None:
        if len(meshes) != NUM_CLASSES:
            raise ValueError(f"need {NUM_CLASSES} meshes, one per class; got {len(meshes)}")
        self.config = config
        bpy.ops.wm.read_factory_settings(use_empty=True)
        self.scene = bpy.context.scene
        _configure_render(self.scene, config, threads)
        _configure_device(self.scene, device)
        self.scene.world = _make_world(config)
        self.scene.camera = _make_camera(config)
        self.ground_material = _make_material("Ground", config)
        self.object_material = _make_material("Object", config)
        _make_ground(config, self.ground_material)
        _make_static_lights(config)
        self.spot = _make_spotlight(config)
        self.objects = [_import_mesh(asset, config, self.object_material) for asset in meshes]
        self._frame_dir = _frame_dir()
        self.scene.render.filepath = str(self._frame_dir / "frame.png")
        self._state: dict[str, object] = {}

    def render(self, latents: np.ndarray, cls: int, scene: str = "causal3dident") -> np.ndarray:
        """Render one image of class ``cls`` with latents [10], read as ``scene`` says (``latents.SCENE_MAPPINGS``:
        the default, raw latents in [-1, 1])."""
        self.apply(latents, cls, scene)
        bpy.ops.render.render(write_still=True)
        frame = Path(self.scene.render.filepath)
        pixels = _read_png(frame)
        frame.unlink()
        return pixels

    def apply(self, latents: np.ndarray, cls: int, scene: str = "causal3dident") -> None:
        """Set the scene to (latents, class), touching only what changed since the last call."""
        cfg = self.config
        latents = np.asarray(latents, dtype=np.float64)
        # a temporal preset's frames name their mapping (scene); else the render config's scene variant decides
        u = scene_units(latents, cfg.scene) if scene == "causal3dident" else SCENE_MAPPINGS[scene](latents)
        obj = self.objects[int(cls)]
        if self._changed("class", int(cls)):
            for i, other in enumerate(self.objects):
                other.hide_render = i != int(cls)
        lift = 0.0 if cfg.scene == "multimodal3dident" else cfg.object_size / 2  # its object sits at z = object_zpos
        location = (float(u[0]), float(u[1]), float(u[2]) + lift)
        if self._changed("location", (int(cls), location)):
            obj.location = location
        if self._changed("rotation", (int(cls), tuple(u[3:6]))):
            obj.rotation_euler = tuple(float(a) for a in u[3:6])
        t = float(u[6])
        spot_at = (cfg.spot_radius * math.sin(t), cfg.spot_radius * math.cos(t), cfg.spot_height + cfg.object_size)
        if self._changed("spot", (spot_at, location)):
            self.spot.location = spot_at
            self.spot.rotation_euler = _look_at(Vector(spot_at), Vector(location), up="X")
        if self._changed("hue_obj", float(u[7])):
            _set_color(self.object_material, hsv_color(float(u[7]), cfg.object_saturation))
        if self._changed("hue_spot", float(u[8])):
            self.spot.data.color = hsv_color(float(u[8]), cfg.spot_saturation)[:3]
        if self._changed("hue_bg", float(u[9])):
            _set_color(self.ground_material, hsv_color(float(u[9]), cfg.ground_saturation))

    def close(self) -> None:
        """Remove the temporary frame folder."""
        shutil.rmtree(self._frame_dir, ignore_errors=True)

    def _changed(self, key: str, value: object) -> bool:
        if self._state.get(key) == value:
            return False
        self._state[key] = value
        return True


def hsv_color(hue: float, saturation: float) -> tuple[float, float, float, float]:
    """RGBA of HSV(hue, saturation, 1); ``hue`` is a fraction of the circle in [0, 1)."""
    return (*colorsys.hsv_to_rgb(hue % 1.0, saturation, 1.0), 1.0)


# -- building ----------------------------------------------------------------------------------------
def _configure_render(scene: bpy.types.Scene, cfg: RenderConfig, threads: int) -> None:
    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x = render.resolution_y = cfg.resolution
    render.resolution_percentage = 100
    render.use_persistent_data = True
    render.dither_intensity = cfg.dither
    render.film_transparent = False
    render.use_compositing = False
    render.use_sequencer = False
    render.threads_mode = "FIXED" if threads > 0 else "AUTO"
    if threads > 0:
        render.threads = threads
    image = render.image_settings
    image.file_format = "PNG"
    image.color_mode = "RGB"
    image.color_depth = "8"
    image.compression = 0
    scene.display_settings.display_device = "sRGB"
    scene.view_settings.view_transform = cfg.view_transform
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    cycles = scene.cycles
    cycles.samples = cfg.samples
    cycles.use_adaptive_sampling = cfg.adaptive_sampling
    cycles.adaptive_threshold = cfg.adaptive_threshold
    cycles.adaptive_min_samples = cfg.adaptive_min_samples
    cycles.use_denoising = cfg.denoise
    if cfg.denoise:
        cycles.denoiser = "OPENIMAGEDENOISE"
        cycles.denoising_prefilter = cfg.denoiser_prefilter
        cycles.denoising_quality = cfg.denoiser_quality
        cycles.denoising_input_passes = cfg.denoising_input_passes
    cycles.sampling_pattern = cfg.sampling_pattern
    cycles.seed = cfg.seed
    cycles.use_animated_seed = False
    cycles.max_bounces = cfg.max_bounces
    cycles.diffuse_bounces = cycles.glossy_bounces = cycles.transmission_bounces = cfg.max_bounces
    cycles.volume_bounces = 0
    cycles.transparent_max_bounces = cfg.transparent_max_bounces
    cycles.blur_glossy = cfg.blur_glossy
    cycles.caustics_reflective = cycles.caustics_refractive = False
    cycles.filter_width = cfg.pixel_filter_width
    cycles.use_light_tree = cfg.light_tree
    cycles.use_auto_tile = False
    scene.view_layers[0].cycles.use_denoising = cfg.denoise


def _configure_device(scene: bpy.types.Scene, device: DeviceSpec) -> None:
    if device.kind == "CPU":
        scene.cycles.device = "CPU"
        return
    prefs = bpy.context.preferences.addons["cycles"].preferences
    prefs.compute_device_type = device.kind
    prefs.refresh_devices()
    found = False
    for dev in prefs.devices:
        dev.use = dev.type == device.kind and dev.id == device.id
        found = found or dev.use
    if not found:
        raise RuntimeError(f"GPU {device.id!r} ({device.kind}) is not visible to Blender in this process")
    scene.cycles.device = "GPU"
    scene.cycles.denoising_use_gpu = True


def _make_world(cfg: RenderConfig) -> bpy.types.World:
    world = bpy.data.worlds.new("World")
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (*cfg.world_color, 1.0)
    background.inputs["Strength"].default_value = 1.0
    return world


def _make_camera(cfg: RenderConfig) -> bpy.types.Object:
    data = bpy.data.cameras.new("Camera")
    data.lens = cfg.lens_mm
    data.sensor_width = cfg.sensor_mm
    data.sensor_fit = "AUTO"
    camera = bpy.data.objects.new("Camera", data)
    camera.location = cfg.camera_location
    camera.rotation_euler = _look_at(Vector(cfg.camera_location), Vector((0.0, 0.0, 0.0)), up="Y")
    bpy.context.scene.collection.objects.link(camera)
    return camera


def _make_material(name: str, cfg: RenderConfig) -> bpy.types.Material:
    """CLEVR-style rubber: a diffuse base (the colour) under a white glossy coat, mixed by Fresnel."""
    material = bpy.data.materials.new(name)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.remove(nodes["Principled BSDF"])
    diffuse = nodes.new("ShaderNodeBsdfDiffuse")
    glossy = nodes.new("ShaderNodeBsdfAnisotropic")  # Blender 4+'s Glossy BSDF
    glossy.distribution = cfg.glossy_distribution
    glossy.inputs["Roughness"].default_value = cfg.material_roughness
    fresnel = nodes.new("ShaderNodeFresnel")
    fresnel.inputs["IOR"].default_value = cfg.material_ior
    mix = nodes.new("ShaderNodeMixShader")
    links.new(fresnel.outputs["Fac"], mix.inputs["Fac"])
    links.new(diffuse.outputs["BSDF"], mix.inputs[1])
    links.new(glossy.outputs["BSDF"], mix.inputs[2])
    links.new(mix.outputs["Shader"], nodes["Material Output"].inputs["Surface"])
    return material


def _set_color(material: bpy.types.Material, rgba: tuple[float, float, float, float]) -> None:
    material.node_tree.nodes["Diffuse BSDF"].inputs["Color"].default_value = rgba


def _make_ground(cfg: RenderConfig, material: bpy.types.Material) -> bpy.types.Object:
    half = cfg.ground_size / 2
    mesh = bpy.data.meshes.new("Ground")
    mesh.from_pydata([(-half, -half, 0), (half, -half, 0), (half, half, 0), (-half, half, 0)], [], [(0, 1, 2, 3)])
    mesh.materials.append(material)
    ground = bpy.data.objects.new("Ground", mesh)
    ground.location = (0.0, 0.0, -cfg.object_size)
    bpy.context.scene.collection.objects.link(ground)
    return ground


def _make_static_lights(cfg: RenderConfig) -> None:
    area = bpy.data.lights.new("Area", type="AREA")
    area.energy = cfg.area_energy_w
    area.size = cfg.area_size
    _link_light(area, cfg.area_location)
    sun = bpy.data.lights.new("Sun", type="SUN")
    sun.energy = cfg.sun_strength
    _link_light(sun, (0.0, 0.0, 10.0))


def _make_spotlight(cfg: RenderConfig) -> bpy.types.Object:
    spot = bpy.data.lights.new("Spotlight", type="SPOT")
    spot.energy = cfg.spot_energy_w
    spot.spot_size = cfg.spot_cone_rad
    spot.spot_blend = cfg.spot_blend
    spot.shadow_soft_size = cfg.spot_soft_size
    return _link_light(spot, (0.0, cfg.spot_radius, cfg.spot_height + cfg.object_size))


def _link_light(data: bpy.types.Light, location: tuple[float, float, float]) -> bpy.types.Object:
    light = bpy.data.objects.new(data.name, data)
    light.location = location
    bpy.context.scene.collection.objects.link(light)
    return light


def _look_at(origin: Vector, target: Vector, up: str) -> tuple[float, float, float]:
    """Euler angles that point an object's -Z axis from ``origin`` at ``target`` (Blender's Track To)."""
    return tuple((target - origin).to_track_quat("-Z", up).to_euler())


def _import_mesh(asset: MeshAsset, cfg: RenderConfig, material: bpy.types.Material) -> bpy.types.Object:
    """Import one OBJ, orient it, centre its bounding box and scale it to ``object_size`` (hidden)."""
    before = set(bpy.data.objects)
    bpy.ops.wm.obj_import(filepath=str(asset.path), forward_axis=asset.forward_axis, up_axis=asset.up_axis,
                          use_split_objects=False, use_split_groups=False, validate_meshes=True)
    new = [o for o in bpy.data.objects if o not in before]
    if len(new) != 1 or new[0].type != "MESH":
        raise ValueError(f"{asset.path}: expected one mesh object, the OBJ importer made {len(new)}")
    obj = new[0]
    obj.name = obj.data.name = asset.name
    mesh = obj.data
    rest = Euler([math.radians(d) for d in asset.rest_rotation_deg], "XYZ").to_matrix().to_4x4()
    mesh.transform(rest @ obj.matrix_world)  # the importer's axis change first, then the rest pose
    obj.matrix_world = Matrix.Identity(4)
    coords = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", coords)
    coords = coords.reshape(-1, 3)
    low, high = coords.min(axis=0), coords.max(axis=0)
    scale = cfg.object_size * asset.size_factor / float((high - low).max())
    mesh.transform(Matrix.Diagonal((scale, scale, scale, 1.0)) @ Matrix.Translation(-Vector((low + high) / 2)))
    mesh.shade_smooth()
    mesh.materials.clear()
    mesh.materials.append(material)
    obj.hide_render = True
    return obj


# -- pixels ----------------------------------------------------------------------------------------
def _ram_dir() -> str | None:
    """A RAM-backed folder for the frame file when there is one (``/dev/shm`` on Linux)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _frame_dir() -> Path:
    """This process's folder for the frame file; removes those of processes that died (kill -9)."""
    root = Path(_ram_dir() or tempfile.gettempdir())
    for old in root.glob("c3di-frame-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = root / f"c3di-frame-{os.getpid()}"
    path.mkdir(exist_ok=True)
    return path


def _read_png(path: Path) -> np.ndarray:
    """Decoded uint8 [H, W, 3] pixels of the frame Blender just wrote."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
