"""Superquadric glyphs of a model's compartments, drawn offscreen with FURY.

:func:`glyph_specs` turns parameters into glyphs (numerics only): one elongated superquadric
per fibre population — long axis along ``mu``, width growing with dispersion (ODI) or axon
diameter, size with the population's signal fraction, colour by direction (``RGB = |x, y, z|``)
— and one grey sphere for the isotropic compartment (free water, dot, IVIM pools) with a
size set by its fraction. :func:`render_glyphs` draws them with FURY 2 (WebGPU; on a
headless machine a software Vulkan device such as Mesa's lavapipe) and returns an RGB image.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

#: Diameter that gives a glyph as wide as it is long.
DIAMETER_ROUND = 12e-6


def _value(maps, name, default):
    v = maps.get(name)
    return default if v is None else float(np.asarray(v).reshape(-1)[0])


def glyph_specs(model, params) -> list[dict]:
    """Glyphs for one voxel's parameters.

    Parameters
    ----------
    model : MultiCompartmentModel
    params : ndarray, shape (size,) or dict
        One voxel's free parameters (SI).

    Returns
    -------
    list of dict
        ``label``, ``center`` (3,), ``direction`` (3,), ``scales`` (3,), ``color`` (3,).
    """
    maps = model.maps(np.asarray(params, float)[None] if not isinstance(params, dict)
                      else {k: np.asarray(v)[None] for k, v in params.items()})
    orientations = model.orientation_names
    n = len(orientations)
    specs = []
    fiso = _value(maps, "fiso", _value(maps, "f_dot", _value(maps, "f", 0.0)))
    for k, name in enumerate(orientations, start=1):
        # built-in models: mu, mu_1, ...; composed models: <compartment>_mu
        sfx = name[2:] if name.startswith("mu") else None
        mu = np.asarray(maps[name], float).reshape(-1, 3)[0]
        odi = _value(maps, f"odi{sfx}", None) if sfx is not None else None
        diameter = _value(maps, f"diameter{sfx}", None) if sfx is not None else None
        if odi is not None:
            width = 0.15 + 0.85 * odi
        elif diameter is not None:
            width = 0.15 + 0.85 * min(diameter / DIAMETER_ROUND, 1.0)
        else:
            width = 0.25
        weight = (_value(maps, f"ffib{sfx}", 1.0) if sfx is not None else 1.0) * (1.0 - fiso)
        size = 0.4 + 0.6 * np.sqrt(max(weight, 0.0))
        label = f"fibre {k}" if sfx is not None else name[: -len("_mu")]
        specs.append({"label": label, "center": np.zeros(3), "direction": mu,
                      "scales": size * np.array([1.0, width, width]),
                      "color": np.abs(mu) / max(np.abs(mu).max(), 1e-9)})
    iso = fiso if n else 1.0
    if iso > 0:
        specs.append({"label": "isotropic", "center": np.array([1.4, 1.4, 0.0]) if n else
                      np.zeros(3), "direction": np.array([0.0, 0.0, 1.0]),
                      "scales": (0.2 + 0.6 * np.sqrt(iso)) * np.ones(3),
                      "color": np.array([0.6, 0.6, 0.6])})
    return specs


def _render_here(specs, size: int) -> np.ndarray:
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    from fury import actor, window
    from PIL import Image

    scene = window.Scene(background=(1, 1, 1, 1))
    for s in specs:
        scene.add(actor.superquadric(
            np.asarray(s["center"], float)[None], directions=np.asarray(s["direction"])[None],
            roundness=(0.6, 0.6), colors=np.asarray(s["color"], float)[None],
            scales=np.asarray(s["scales"], float)[None]))
    with tempfile.TemporaryDirectory() as tmp:
        arr = window.snapshot(scene=scene, fname=os.path.join(tmp, "glyph.png"),
                              return_array=True)
    img = Image.fromarray(np.asarray(arr)[..., :3].astype(np.uint8)).resize((size, size))
    return np.asarray(img)


_RENDERER = None


def _renderer():
    """One long-lived renderer process (spawned): WebGPU stays out of the caller's process."""
    global _RENDERER
    if _RENDERER is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _RENDERER = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    return _RENDERER


def render_glyphs(specs, *, size: int = 400, timeout: float = 180.0) -> np.ndarray:
    """RGB image ``(size, size, 3)`` uint8 of the glyphs, rendered offscreen with FURY.

    Rendering runs in a separate, reused process: a WebGPU driver that fails (or crashes)
    cannot take the notebook kernel or dashboard down with it.

    Parameters
    ----------
    specs : list of dict
        Glyphs from :func:`glyph_specs`.
    size : int
        Image width and height in pixels.
    timeout : float
        Seconds to wait for the renderer.

    Returns
    -------
    ndarray of uint8, shape (size, size, 3)

    Raises
    ------
    RuntimeError
        When the renderer process crashed (no WebGPU/Vulkan device).
    """
    from concurrent.futures.process import BrokenProcessPool

    global _RENDERER
    try:
        return _renderer().submit(_render_here, list(specs), int(size)).result(timeout)
    except BrokenProcessPool:
        _RENDERER = None
        raise RuntimeError("the FURY glyph renderer crashed: this machine needs a WebGPU "
                           "device (on Debian: apt-get install mesa-vulkan-drivers "
                           "libvulkan1).") from None


def glyph_png(model, params, *, size: int = 400) -> bytes:
    """PNG bytes of :func:`render_glyphs` for one voxel (for widgets and reports).

    Parameters
    ----------
    model : MultiCompartmentModel
    params : ndarray, shape (size,)
        Packed free parameters of one voxel, in SI units.
    size : int
        Image width and height in pixels.

    Returns
    -------
    bytes
        A PNG image.
    """
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(render_glyphs(glyph_specs(model, params), size=size)).save(buf, "png")
    return buf.getvalue()
