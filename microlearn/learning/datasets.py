"""Training sets simulated from a model's priors: signals, targets, fibre mixtures.

A training set is drawn once per fibre count (0–3 fibre populations, in the proportions
asked for), simulated in chunks by :func:`microlearn.simulate.simulate` (compiled signal
kernels), given Rician noise at the requested SNR and shuffled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..models.registry import FAMILIES, family_of
from ..models.spec import resolve_model
from ..simulate import add_noise, as_rng, sample_parameters, simulate


def fibre_counts(model) -> tuple[int, ...]:
    """Fibre counts a training set of ``model`` may hold: its family's (registry), or the
    composed model's own count."""
    m = resolve_model(model)
    record = family_of(m)
    return tuple(record.fibre_counts) if record is not None else (m.n_fibres,)


@dataclass
class TrainingSet:
    """Simulated signals and their ground-truth targets.

    Attributes
    ----------
    signal : ndarray, shape (n, N)
        Noisy signals normalised by S0 = 1 (raw, not divided by the b0 mean).
    targets : ndarray, shape (n, T)
        Target values in SI units.
    target_names : tuple of str
    n_fibres : ndarray of int, shape (n,)
        Fibre populations of each sample.
    """

    signal: np.ndarray
    targets: np.ndarray
    target_names: tuple[str, ...]
    n_fibres: np.ndarray

    def __len__(self) -> int:
        return self.signal.shape[0]


def default_targets(model) -> tuple[str, ...]:
    """The maps a learned estimator predicts for a model (its default-fibre names)."""
    m = resolve_model(model)
    record = family_of(m)
    if record is not None and m.n_fibres != record.default_fibres:
        m = m.with_fibres(record.default_fibres)
    return m.targets


def parse_fibre_mixture(model, n_fibres) -> dict[int, float]:
    """Proportions of each fibre count: an int, a sequence or a ``{count: weight}`` dict."""
    m = resolve_model(model)
    allowed = fibre_counts(m)
    name = m.family if m.family in FAMILIES else m.name
    if n_fibres is None:
        record = family_of(m)
        n_fibres = (record.default_fibres,) if record is not None else (m.n_fibres,)
    if isinstance(n_fibres, (int, np.integer)):
        mix = {int(n_fibres): 1.0}
    elif isinstance(n_fibres, dict):
        mix = {int(k): float(v) for k, v in n_fibres.items()}
    else:
        mix = {int(k): 1.0 for k in n_fibres}
    bad = sorted(set(mix) - set(allowed))
    if bad or not mix:
        raise ValueError(f"n_fibres: {name} supports {list(allowed)} fibre populations, "
                         f"not {bad or 'an empty list'}.")
    if any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError("n_fibres: proportions must be non-negative with a positive sum.")
    total = sum(mix.values())
    return {k: v / total for k, v in sorted(mix.items())}


def _targets_for(model, params, names) -> np.ndarray:
    maps = model.maps(params)
    n = params.shape[0]
    cols = []
    for name in names:
        if name in maps:
            cols.append(np.broadcast_to(np.asarray(maps[name], dtype=float), (n,)))
        elif model.n_fibres == 0:
            # no fibres: intra-neurite and dispersion maps are undefined; learn them as 0
            cols.append(np.zeros(n))
        else:
            raise ValueError(f"targets: model {model.name} has no map {name!r}; "
                             f"available {sorted(maps)}.")
    return np.stack(cols, axis=1)


def make_training_set(model, acq, n_samples: int, *, n_fibres=None,
                      snr: float = 30.0, targets=None, ranges=None,
                      min_crossing_angle: float = 45.0, random_state=None,
                      progress: bool = False, empirical=None, noise=None,
                      multi_echo: bool = True) -> TrainingSet:
    """Simulate a training set for a model.

    Parameters
    ----------
    model : str, dict or MultiCompartmentModel
        A family name, a model spec or a model (see :func:`~microlearn.models.resolve_model`);
        fibre counts other than its own rebuild it with :meth:`with_fibres`.
    acq : Acquisition
    n_samples : int
        Number of simulated voxels.
    n_fibres : int, sequence of int or dict, optional
        Fibre populations per sample: one count, several in equal proportions, or
        ``{count: proportion}``. Default 1 (0 for IVIM).
    snr : float
        Signal-to-noise ratio at b = 0 (Rician noise, σ = 1/snr); ``inf`` for none.
    targets : sequence of str, optional
        Maps to learn; default :func:`default_targets`. For several fibres the
        fibre-weighted maps of the multi-fibre model are used (e.g. ``odi``).
    ranges : dict, optional
        Prior ranges per single-fibre parameter name (SI), applied to every fibre.
    random_state : int or Generator, optional
    empirical : dict of int -> ndarray, optional
        Fitted parameters per fibre count (:func:`.empirical.fit_sample`): training
        parameters are drawn around them (:func:`.empirical.sample_empirical`) instead of
        from the model's priors, and the fibre mixture defaults to their proportions.
    noise : NoiseProfile, optional
        The data's noise (:mod:`microlearn.learning.noise`): each sample gets the SNR and
        per-TE b0 scaling of a data voxel drawn at random, instead of ``snr``.
    multi_echo : bool
        With several echo times, compartments relax with random T2s and the targets are
        the apparent fractions at the mean TE (:mod:`.echo`).
    """
    n_samples = int(n_samples)
    if n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, not {n_samples}.")
    if not snr > 0:
        raise ValueError(f"snr must be positive (or inf for noiseless signals), not {snr}.")
    if empirical is not None and n_fibres is None:
        n_fibres = {k: len(v) for k, v in empirical.items() if len(v)}
    base = resolve_model(model)
    mix = parse_fibre_mixture(base, n_fibres)
    names = tuple(targets) if targets is not None else default_targets(base)
    rng = as_rng(random_state)
    counts = np.floor(np.array(list(mix.values())) * n_samples).astype(int)
    counts[0] += n_samples - counts.sum()
    signals, ys, fibres = [], [], []
    for (k, _), m in zip(mix.items(), counts):
        if m == 0:
            continue
        model = base.with_fibres(k)
        model_ranges = _ranges_for(model, ranges)
        if empirical is not None and len(empirical.get(k, ())):
            from .empirical import sample_empirical

            params = sample_empirical(model, empirical[k], m, rng=rng)
        else:
            params = sample_parameters(model, m, random_state=rng, ranges=model_ranges,
                                       min_crossing_angle=min_crossing_angle)
        if acq.n_te > 1 and multi_echo:
            from .echo import multi_echo_signal

            clean = multi_echo_signal(model, acq, params, rng)
        else:
            clean = simulate(model, acq, params, progress=progress)
        if noise is not None:
            signals.append(noise.add_noise(clean, acq, rng))
        else:
            signals.append(clean if np.isinf(snr) else add_noise(clean, snr, random_state=rng))
        ys.append(_targets_for(model, params, names))
        fibres.append(np.full(m, k, dtype=np.int8))
    order = rng.permutation(n_samples)
    return TrainingSet(signal=np.concatenate(signals)[order],
                       targets=np.concatenate(ys)[order], target_names=names,
                       n_fibres=np.concatenate(fibres)[order])


def _ranges_for(model, ranges):
    """Map single-fibre range names (``odi``) onto per-fibre names (``odi_1``, ...)."""
    if not ranges:
        return None
    names = set(model.parameters.names)
    out = {}
    for key, value in ranges.items():
        matches = [n for n in names if n == key or re.fullmatch(rf"{re.escape(key)}_\d", n)]
        if not matches and model.n_fibres > 0:
            raise ValueError(f"ranges: {model.name} has no parameter {key!r}; "
                             f"known {sorted(names)}.")
        out.update({n: value for n in matches})
    return out
