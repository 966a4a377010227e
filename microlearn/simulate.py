"""Simulation: sample parameters from priors, compute signals, add noise (vectorised)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .parameters import angles_to_cartesian, cartesian_to_angles

#: Voxels per block when computing signals (keeps arrays in cache-friendly sizes).
SIMULATION_CHUNK = 8192


def as_rng(random_state) -> np.random.Generator:
    """A :class:`numpy.random.Generator` from a seed, a Generator or None.

    Parameters
    ----------
    random_state : int, sequence of int, numpy.random.Generator or None
        A generator is returned as is; anything else seeds a new one.

    Returns
    -------
    numpy.random.Generator
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def random_directions(n: int, rng) -> np.ndarray:
    """Directions uniform on the sphere.

    Parameters
    ----------
    n : int
        Number of directions.
    rng : int, numpy.random.Generator or None
        Seed or generator.

    Returns
    -------
    ndarray, shape (n, 3)
        Unit vectors.
    """
    v = as_rng(rng).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def crossing_directions(n: int, n_fibres: int, rng, *, min_angle_deg: float = 45.0,
                        max_angle_deg: float = 90.0) -> np.ndarray:
    """Fibre directions with pairwise crossing angles in [min, max] degrees.

    Each new fibre is drawn at an angle uniform in ``[min, max]`` from the first fibre
    and at a uniform azimuth around it; draws that come closer than ``min_angle_deg`` to
    an earlier fibre are redrawn (vectorised rejection).

    Parameters
    ----------
    n : int
        Number of voxels.
    n_fibres : int
        Fibres per voxel (0–3).
    rng : int, numpy.random.Generator or None
        Seed or generator.
    min_angle_deg, max_angle_deg : float
        Range of the crossing angle with the first fibre, in degrees.

    Returns
    -------
    ndarray, shape (n, n_fibres, 3)
        Unit fibre directions.
    """
    rng = as_rng(rng)
    out = np.empty((n, n_fibres, 3))
    if n_fibres == 0:
        return out
    first = random_directions(n, rng)
    out[:, 0] = first
    helper = np.where(np.abs(first[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    e1 = np.cross(first, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(first, e1)
    cos_min = np.cos(np.deg2rad(min_angle_deg))
    for k in range(1, n_fibres):
        todo = np.arange(n)
        for _ in range(200):
            angle = np.deg2rad(rng.uniform(min_angle_deg, max_angle_deg, todo.size))
            az = rng.uniform(0, 2 * np.pi, todo.size)
            v = (np.cos(angle)[:, None] * first[todo]
                 + np.sin(angle)[:, None] * (np.cos(az)[:, None] * e1[todo]
                                             + np.sin(az)[:, None] * e2[todo]))
            out[todo, k] = v
            ok = np.ones(todo.size, bool)
            for j in range(1, k):
                ok &= np.abs(np.sum(out[todo, j] * v, 1)) <= cos_min + 1e-12
            todo = todo[~ok]
            if todo.size == 0:
                break
    return out


def sample_parameters(model, n: int, *, random_state=None, ranges: Mapping | None = None,
                      min_crossing_angle: float = 45.0) -> np.ndarray:
    """Draw ``n`` parameter vectors from the model's priors.

    Scalars are uniform on each Parameter's ``prior_bounds`` (or ``ranges[name]``, SI);
    orientations are uniform on the sphere, with pairwise crossing angles of at least
    ``min_crossing_angle`` degrees between fibres.

    Parameters
    ----------
    model : MultiCompartmentModel
    n : int
        Number of parameter vectors.
    random_state : int, numpy.random.Generator or None
        Seed or generator.
    ranges : mapping of str to (float, float), optional
        Prior range per parameter name, in SI units (overrides ``prior_bounds``).
    min_crossing_angle : float
        Smallest angle between two fibres of a voxel, in degrees.

    Returns
    -------
    ndarray, shape (n, model.parameters.size)
        Packed parameters (orientations as angles).

    Raises
    ------
    ValueError
        When ``ranges`` names a parameter the model does not have.
    """
    rng = as_rng(random_state)
    ranges = dict(ranges or {})
    space = model.parameters
    if space.size == 0:
        return np.zeros((n, 0))
    unknown = set(ranges) - set(space.names)
    if unknown:
        raise ValueError(f"ranges: unknown parameters {sorted(unknown)}; known {space.names}.")
    values = {}
    orientations = model.orientation_names
    if orientations:
        dirs = crossing_directions(n, len(orientations), rng, min_angle_deg=min_crossing_angle)
        for k, name in enumerate(orientations):
            values[name] = cartesian_to_angles(dirs[:, k])
    for p in space:
        if p.kind == "orientation":
            continue
        lo, hi = ranges.get(p.name, p.prior_bounds)
        values[p.name] = rng.uniform(lo, hi, n)
    return space.pack(values)


def t2_weighting(acq, t2) -> np.ndarray:
    """Echo-time decay ``exp(−TE/T2)`` of every measurement.

    Parameters
    ----------
    acq : Acquisition
        Needs ``TE`` (all ones without it).
    t2 : float or ndarray, shape (*batch,)
        Transverse relaxation time in s.

    Returns
    -------
    ndarray, shape (*batch, n_measurements)
    """
    t2 = np.asarray(t2, dtype=float)
    if acq.TE is None:
        return np.ones(t2.shape + (acq.n_measurements,))
    return np.exp(-acq.TE / t2[..., None])


def simulate(model, acq, params, *, t2=None, chunk: int = SIMULATION_CHUNK,
             progress: bool = False):
    """Noiseless signals for packed parameters, in blocks of ``chunk`` voxels.

    Parameters
    ----------
    model : MultiCompartmentModel
    acq : Acquisition
    params : ndarray, shape (n, size)
    t2 : float, ndarray of shape (n,), or dict of str to float, optional
        Transverse relaxation (s) for multi-echo-time data: one T2 for all voxels, one per
        voxel, or one per compartment (``{"stick": 0.08, "ball": 1.0, ...}`` by compartment
        name; compartments left out do not decay). Without it the signal is S/S0 at every
        TE; with it the signal is relative to the proton density (b = 0, TE = 0).
    chunk : int
        Voxels per block.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    ndarray, shape (n, n_measurements), float64
    """
    params = np.asarray(params, dtype=float)
    flat = params.reshape(int(np.prod(params.shape[:-1])), params.shape[-1])
    out = np.empty((flat.shape[0], acq.n_measurements))
    per_voxel = None
    if t2 is not None and not isinstance(t2, Mapping):
        per_voxel = np.broadcast_to(np.asarray(t2, dtype=float), (flat.shape[0],))
    starts = range(0, flat.shape[0], chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="simulate", unit="block")
    for s in starts:
        block = flat[s:s + chunk]
        if isinstance(t2, Mapping):
            out[s:s + chunk] = _compartment_t2_signal(model, acq, block, t2)
        else:
            out[s:s + chunk] = model.signal(acq, block)
            if per_voxel is not None:
                out[s:s + chunk] *= t2_weighting(acq, per_voxel[s:s + chunk])
    return out.reshape(params.shape[:-1] + (acq.n_measurements,))


def _compartment_t2_signal(model, acq, params, t2: Mapping) -> np.ndarray:
    unknown = set(t2) - set(model.compartment_names)
    if unknown:
        raise ValueError(f"t2 names unknown compartments {sorted(unknown)}; the model has "
                         f"{model.compartment_names}.")
    _, fractions = model.resolve(params)
    comp = model.compartment_signals(acq, params)  # (V, C, N)
    decay = np.stack([t2_weighting(acq, t2[name]) if name in t2 else
                      np.ones(acq.n_measurements) for name in model.compartment_names])
    return np.einsum("vc,vcn,cn->vn", fractions, comp, decay)


def add_noise(signal, snr: float, *, kind: str = "rician", random_state=None, s0=1.0):
    """Add Rician or Gaussian noise with σ = s0 / snr.

    Parameters
    ----------
    signal : ndarray, shape (*batch, n)
        Noiseless signal (S/S0 times ``s0``).
    snr : float
        Signal-to-noise ratio of the b0 signal (``s0 / σ``); ``inf`` adds nothing.
    kind : {"rician", "gaussian"}
        Magnitude of complex Gaussian noise (Rician) or real Gaussian noise.
    random_state : int, numpy.random.Generator or None
        Seed or generator.
    s0 : float or ndarray, shape (*batch,)
        b0 signal level (signal units), so that σ = s0 / snr.

    Returns
    -------
    ndarray, shape (*batch, n)
        Noisy signal, float64.
    """
    if kind not in ("rician", "gaussian"):
        raise ValueError(f"noise kind must be 'rician' or 'gaussian', got {kind!r}.")
    if not snr > 0:
        raise ValueError(f"snr must be positive, got {snr!r}.")
    signal = np.asarray(signal, dtype=float)
    if np.isinf(snr):
        return signal.copy()
    rng = as_rng(random_state)
    sigma = np.asarray(s0, dtype=float) / snr
    if np.ndim(sigma):
        sigma = sigma[..., None]
    real = signal + sigma * rng.standard_normal(signal.shape)
    if kind == "gaussian":
        return real
    imag = sigma * rng.standard_normal(signal.shape)
    return np.sqrt(real**2 + imag**2)


def simulate_dataset(model, acq, n: int, *, snr: float = 30.0, noise: str = "rician",
                     random_state=None, ranges=None, min_crossing_angle: float = 45.0):
    """Parameters, noiseless and noisy signals in one call.

    Parameters
    ----------
    model : MultiCompartmentModel
    acq : Acquisition
    n : int
        Number of voxels.
    snr : float
        b0 signal-to-noise ratio.
    noise : {"rician", "gaussian"}
    random_state : int, numpy.random.Generator or None
        Seed or generator.
    ranges : mapping of str to (float, float), optional
        Prior ranges (SI) per parameter name (see :func:`sample_parameters`).
    min_crossing_angle : float
        Smallest angle between fibres, in degrees.

    Returns
    -------
    params : ndarray, shape (n, size)
    clean, noisy : ndarray, shape (n, n_measurements)
    """
    rng = as_rng(random_state)
    params = sample_parameters(model, n, random_state=rng, ranges=ranges,
                               min_crossing_angle=min_crossing_angle)
    clean = simulate(model, acq, params)
    return params, clean, add_noise(clean, snr, kind=noise, random_state=rng)


__all__ = ["add_noise", "angles_to_cartesian", "crossing_directions", "random_directions",
           "sample_parameters", "simulate", "simulate_dataset", "t2_weighting"]
