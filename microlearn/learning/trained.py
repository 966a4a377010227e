"""``train()`` and :class:`TrainedEstimator`: from a model's priors to whole-brain maps.

``train`` simulates a training set from the model (any fibre mixture, Rician noise),
computes the chosen features, fits the chosen estimator and returns a
:class:`TrainedEstimator` that remembers the acquisition it was trained for and
predicts maps from raw signals block by block.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..models.registry import family_of
from ..models.spec import model_reference, resolve_model
from .datasets import make_training_set, parse_fibre_mixture
from .estimators import ESTIMATORS
from .features import FeatureSpec
from .networks import NETWORKS
from .optimizers import OPTIMIZERS

log = logging.getLogger(__name__)

#: Every estimator name accepted by :func:`train`.
ESTIMATOR_NAMES = tuple(ESTIMATORS) + tuple(NETWORKS)
#: Estimators whose ``predict`` can return a standard deviation: always (``bayesian``,
#: ``bayesian-dnn``), or when trained with ``uncertainty=True`` (``learn --uncertainty``).
UNCERTAIN = ESTIMATOR_NAMES
#: Estimators that always predict a std (the others with ``uncertainty=True``).
ALWAYS_UNCERTAIN = ("bayesian", "bayesian-dnn", "deep-ensemble")
#: Share of model-prior samples mixed into an empirical-prior training set (see
#: :func:`train`). Deep ensemble, 100k samples, held-out data of the independent simulator:
#: on a brain-like mixture (white matter, crossings, grey matter, CSF partial volume) shares
#: 0 / 0.1 / 0.2 give ODI 90 % coverage 0.81 / 0.86 / 0.90 and ODI RMSE 0.111 / 0.103 /
#: 0.093; on uniform single-fibre tissue ODI coverage 0.88 / 0.92 / 0.95 (too wide beyond)
#: and RMSE ODI/ICVF/FISO 0.0336/0.0204/0.0279 / 0.0320/0.0208/0.0284 / 0.0315/0.0209/0.0284.
MODEL_SHARE = 0.1
#: Voxels per prediction block.
PREDICT_BLOCK = 200_000
#: Training-feature quantiles that bound the prior, and the margin (share of the range)
#: beyond which a voxel's features are flagged ``out_of_prior``.
PRIOR_QUANTILES, PRIOR_MARGIN = (0.001, 0.999), 0.1
#: A voxel is also ``out_of_prior`` when the Mahalanobis distance of its features from the
#: training features exceeds this factor times their 99.9 % quantile: the box above misses
#: feature combinations the training never had (each feature within its range).
PRIOR_DISTANCE_FACTOR = 1.5


#: Blocks up to this many voxels run on one BLAS/OpenMP thread: their matrix products take
#: milliseconds, less than waking and synchronising a thread pool (on a shared 2-core
#: machine the predict stage of 8000 voxels: median 30-60 ms on one thread vs 70-300 ms).
SERIAL_BLOCK = 20_000


def _single_thread():
    """Context limiting BLAS and OpenMP (scikit-learn trees) to one thread."""
    from threadpoolctl import ThreadpoolController

    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1)


_CONTROLLER = None


def model_family(model) -> str:
    """The registry family of a model (name, spec or object; ``noddi2`` -> ``noddi``), or
    ``"custom"`` for a composed model."""
    return resolve_model(model).family


def default_fibres(model) -> dict[int, float]:
    """Default fibre mixture of a training set: the family's (registry: NODDI mixes 1–3
    fibres plus 10 % pure free water, since CSF lies outside the single-fibre fiso prior),
    or a composed model's own fibre count."""
    m = resolve_model(model)
    record = family_of(m)
    return dict(record.training_fibres) if record is not None else {m.n_fibres: 1.0}


def with_uncertainty(estimator: str, options: dict | None = None) -> tuple[str, dict]:
    """The estimator name and options that learn a calibrated std for ``estimator``.

    ``dnn`` becomes a ``deep-ensemble`` (five heteroscedastic networks: on held-out NODDI
    from an independent simulator its std ranks errors better than a residual head on the
    DNN and its maps are 1-10 % more accurate, ``benchmarks/bench_uncertainty.py``);
    estimators in :data:`ALWAYS_UNCERTAIN` are kept; the others get ``uncertainty=True``
    (a calibrated residual head, :mod:`microlearn.learning.uncertainty`).
    """
    options = dict(options or {})
    if estimator == "dnn":
        return "deep-ensemble", options
    if estimator not in ALWAYS_UNCERTAIN:
        options["uncertainty"] = True
    return estimator, options


def make_estimator(name: str, optimizer=None, *, learning_rate=None, random_state=0,
                   progress=False, **options):
    """An unfitted estimator by name, with the optimizer where it applies.

    ``learning_rate`` is the step size of the optimizer named by ``optimizer`` (for
    ``wide-deep`` given an optimizer: its wide part; otherwise the network) or of the
    boosted trees; ``None`` keeps each optimizer's default
    (:data:`~microlearn.learning.optimizers.DEFAULT_LEARNING_RATES`).
    """
    if name not in ESTIMATOR_NAMES:
        raise ValueError(f"estimator: unknown name {name!r}; choose one of "
                         f"{list(ESTIMATOR_NAMES)}.")
    if optimizer is not None and optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: unknown name {optimizer!r}; choose one of "
                         f"{list(OPTIMIZERS)}.")
    if name in ESTIMATORS:
        if name == "linear-sdca":
            if optimizer not in (None, "sdca"):
                raise ValueError("estimator 'linear-sdca' is trained by SDCA only.")
        elif optimizer is not None:
            raise ValueError(f"optimizer applies to the networks {list(NETWORKS)} and "
                             f"'linear-sdca', not to {name!r}.")
        cls = ESTIMATORS[name]
    else:
        cls = NETWORKS[name]
        options.setdefault("verbose", progress)
        if name == "wide-deep":
            if optimizer is not None:
                options.setdefault("wide_optimizer", optimizer)
        elif optimizer == "sdca":
            raise ValueError("optimizer 'sdca' trains linear models only: use estimator "
                             "'linear-sdca', or 'wide-deep' (its wide part).")
        elif optimizer is not None:
            options["optimizer"] = optimizer
    if learning_rate is not None:
        if not float(learning_rate) > 0:
            raise ValueError(f"learning_rate must be positive, not {learning_rate}.")
        key = ("wide_learning_rate" if name == "wide-deep" and optimizer is not None
               else "learning_rate")
        if key not in cls().get_params():
            raise ValueError(f"learning_rate: {name!r} has no learning rate (it applies to "
                             f"the networks {list(NETWORKS)} and 'boosted-trees').")
        options[key] = float(learning_rate)
    if "random_state" in cls().get_params():
        options.setdefault("random_state", random_state)
    unknown = set(options) - set(cls().get_params())
    if unknown:
        raise ValueError(f"{name}: unknown options {sorted(unknown)}; known "
                         f"{sorted(cls().get_params())}.")
    return cls(**options)


@dataclass
class TrainedEstimator:
    """A fitted estimator with everything needed to apply it safely.

    Attributes
    ----------
    model : str
        Model family (``noddi``, ``activeax``, ``zcd``, ``ivim``).
    n_fibres : dict
        Fibre-count proportions of the training set.
    acq : Acquisition
        The acquisition the estimator was trained for; data must match it.
    features : FeatureSpec
    target_names : tuple of str
    estimator : object
        scikit-learn-style regressor on the features.
    estimator_name : str
    optimizer : str or None
    info : dict
        Training size, SNR, seconds, seed; ``feature_range`` (2, F): the 0.1 % and
        99.9 % quantiles of every training feature (the out-of-prior test).
    timing : dict
        Filled by :meth:`predict_block` in this process: ``n_voxels`` and
        ``predict_seconds`` (features + estimator, signals in memory -> maps in memory,
        summed over blocks; reading and writing files excluded).
    """

    model: str
    n_fibres: dict
    acq: object
    features: FeatureSpec
    target_names: tuple
    estimator: object
    estimator_name: str
    optimizer: str | None = None
    info: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def uncertain(self) -> bool:
        """True when predictions come with a standard deviation."""
        return (self.estimator_name in ALWAYS_UNCERTAIN
                or bool(getattr(self.estimator, "uncertainty", False)))

    def _bounds(self):
        space = resolve_model(self.model).parameters
        out = {}
        for t in self.target_names:
            try:
                out[t] = space[t].bounds
            except KeyError:  # a derived map: no bounds to clip to
                out[t] = (-np.inf, np.inf)
        return out

    def check_acquisition(self, acq, where="data") -> None:
        """Raise ``ValueError`` when ``acq`` is not the training acquisition."""
        if acq is not None and not self.acq.matches(acq):
            raise ValueError(
                f"{where}: its acquisition ({acq.n_measurements} measurements, "
                f"fingerprint {acq.fingerprint()}) does not match the one this estimator was "
                f"trained for ({self.acq.n_measurements} measurements, fingerprint "
                f"{self.acq.fingerprint()}); train an estimator for this acquisition "
                "(microlearn learn --acquisition INPUT).")

    def prepare(self) -> float:
        """Build what every prediction reuses (the features' SH projection, the network's
        NumPy graph, the thread-pool controller) on a few dummy voxels; returns the seconds
        it took (``set-up``, reported apart from the predict stage, as fits report theirs).
        """
        t0 = time.perf_counter()
        _single_thread()  # finds the thread pools once (~20-50 ms)
        dummy = np.ones((2, self.acq.n_measurements))
        feats, bad = self.features.compute(dummy, self.acq)
        if not bad.all():
            if self.uncertain:
                self.estimator.predict(feats[~bad], return_std=True)
            else:
                self.estimator.predict(feats[~bad])
        return time.perf_counter() - t0

    def predict_block(self, signal) -> dict[str, np.ndarray]:
        """Maps for a block of raw signals.

        Parameters
        ----------
        signal : ndarray, shape (n, N)
            Raw signals (any S0; each voxel is divided by its b0 mean).

        Returns
        -------
        dict of str -> ndarray, shape (n,)
            One entry per target (SI, clipped to the parameter bounds), ``<t>_std`` for
            uncertain estimators; NaN for voxels with a non-positive b0 or bad values.
            ``out_of_prior`` (1.0 / 0.0, when the training feature range is known): a
            feature lies more than 10 % of its training range outside it, so the maps
            extrapolate beyond the simulated prior.
        """
        t0 = time.perf_counter()
        signal = np.asarray(signal, dtype=float)
        if len(signal) <= SERIAL_BLOCK:
            with _single_thread():
                return self._predict_block(signal, t0)
        return self._predict_block(signal, t0)

    def _predict_block(self, signal, t0):
        if signal.ndim != 2 or signal.shape[1] != self.acq.n_measurements:
            raise ValueError(f"signal must have shape (n, {self.acq.n_measurements}) for this "
                             f"estimator, not {signal.shape}.")
        feats, bad = self.features.compute(signal, self.acq)
        n, T = len(signal), len(self.target_names)
        mean = np.full((n, T), np.nan)
        std = np.full((n, T), np.nan) if self.uncertain else None
        good = ~bad
        if good.any():
            if self.uncertain:
                m, s = self.estimator.predict(feats[good], return_std=True)
                std[good] = np.reshape(s, (-1, T))
            else:
                m = self.estimator.predict(feats[good])
            mean[good] = np.reshape(m, (-1, T))
        out = {}
        calibration = self.info.get("fit_calibration") or {}
        for j, (t, (lo, hi)) in enumerate(zip(self.target_names, self._bounds().values())):
            a, b = calibration.get(t, (0.0, 1.0))
            out[t] = np.clip(a + b * mean[:, j], lo, hi)
            if std is not None:
                out[f"{t}_std"] = std[:, j]
        if "feature_range" in self.info:
            flag = np.full(n, np.nan)
            flag[good] = self._out_of_prior(feats[good])
            out["out_of_prior"] = flag
        self.timing["n_voxels"] = self.timing.get("n_voxels", 0) + n
        self.timing["predict_seconds"] = (self.timing.get("predict_seconds", 0.0)
                                          + time.perf_counter() - t0)
        return out

    def map_names(self) -> list[str]:
        """Every map :meth:`predict_maps` returns: targets, ``<t>_std``, ``out_of_prior``."""
        names = list(self.target_names)
        names += [f"{t}_std" for t in self.target_names] if self.uncertain else []
        return names + (["out_of_prior"] if "feature_range" in self.info else [])

    def _out_of_prior(self, feats) -> np.ndarray:
        lo, hi = np.asarray(self.info["feature_range"], dtype=float)
        pad = PRIOR_MARGIN * (hi - lo)
        out = np.any((feats < lo - pad) | (feats > hi + pad), axis=1)
        dist = self.info.get("feature_distance")
        if dist is not None:
            d2 = _mahalanobis2(feats, dist)
            out |= d2 > PRIOR_DISTANCE_FACTOR ** 2 * float(dist["q999"])
        return out.astype(float)

    def predict_maps(self, data, mask=None, *, acq=None, progress=False) -> dict:
        """Maps over a volume (or any batch shape).

        Parameters
        ----------
        data : ndarray, shape (*spatial, N)
            Raw signals.
        mask : ndarray of bool, shape (*spatial,), optional
        acq : Acquisition, optional
            The data's acquisition; refused when it differs from the training one.

        Returns
        -------
        dict of str -> ndarray, shape (*spatial,), NaN outside the mask
        """
        self.check_acquisition(acq)
        from ..data.voxels import check_data_and_mask

        data, mask = check_data_and_mask(
            data, self.acq.n_measurements, mask, expected="this estimator's acquisition",
            fix="train an estimator for this acquisition")
        spatial = data.shape[:-1]
        idx = np.flatnonzero(mask.ravel())
        flat = data.reshape(-1, data.shape[-1])
        names = self.map_names()
        out = {k: np.full(int(np.prod(spatial)), np.nan) for k in names}
        starts = range(0, idx.size, PREDICT_BLOCK)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="predict", unit="block")
        for s in starts:
            sel = idx[s:s + PREDICT_BLOCK]
            for k, v in self.predict_block(flat[sel]).items():
                out[k][sel] = v
        return {k: v.reshape(spatial) for k, v in out.items()}

    def save(self, path, *, force: bool = False):
        """Write the estimator to folder ``path`` (safe formats; see persistence).

        An existing estimator there is replaced only with ``force``; other files in the
        folder are kept.
        """
        from .persistence import save_estimator

        return save_estimator(self, path, force=force)

    def describe(self) -> str:
        """One line: model, estimator, optimizer, features, training size."""
        opt = f" ({self.optimizer})" if self.optimizer else ""
        prior = self.info.get("prior")
        where = (" around fits of "
                 f"{sum(prior['fitted_voxels'].values())} data voxels (empirical prior)"
                 if isinstance(prior, dict) else "")
        return (f"{self.estimator_name}{opt} for {self.model} on {self.features.kind} "
                f"features, trained on {self.info.get('n_samples', '?')} simulated voxels"
                f"{where} at SNR {self.info.get('snr', '?')} -> {', '.join(self.target_names)}")


def train(model, acq, *, estimator="dnn", optimizer=None, learning_rate=None,
          features="rotation-invariant",
          n_samples=100_000, snr=None, n_fibres=None, targets=None, ranges=None,
          lmax=6, shore=False, hybrid_method="mix", prior_signals=None, prior_fit=None,
          empirical=None, model_share=MODEL_SHARE, noise_signals=None, noise=None,
          calibrate=True, random_state=0, progress=False,
          **estimator_options) -> TrainedEstimator:
    """Simulate a training set from ``model`` and fit a learned estimator to it.

    Parameters
    ----------
    model : str, dict or MultiCompartmentModel
        A family name (``noddi``...), a model spec or a model (built-in with changed
        settings, or composed); saved with the estimator.
    acq : Acquisition
        The acquisition of the data the estimator will be applied to.
    estimator : str
        One of :data:`ESTIMATOR_NAMES`.
    optimizer : {"adam", "ftrl", "proximal-adagrad", "sdca"}, optional
        For the networks (``wide-deep``: the wide part) and ``linear-sdca``.
    learning_rate : float, optional
        Step size of that optimizer (or of boosted trees); default: the optimizer's own.
    features : {"rotation-invariant", "signal", "hybrid"}
    n_samples : int
        Simulated training voxels.
    snr : float, optional
        Rician SNR of the training signals. Default: the data's own noise when data are
        given (``prior_signals`` or ``noise_signals``: σ from the b0 repeats or the fit
        residuals, each training voxel at the SNR and per-TE b0 scaling of a data voxel,
        :mod:`microlearn.learning.noise`), else 30.
    n_fibres : int, sequence, dict or "auto", optional
        Fibre populations of the training voxels (see ``make_training_set``). With data
        (``prior_signals``) the default is the model's own count, the prior is fitted with
        it and the estimator learns the maps ``fit`` reports for that model; ``"auto"``
        fits 0-3 fibres per voxel and trains on the fitted proportions (fibre-weighted
        maps, as ``fit --n-fibres auto``). On the model's priors the default (and
        ``"auto"``) mixes 1, 2 and 3 fibres so that crossings are handled without
        orientations, plus 10 % pure free water (the family's registry record,
        :func:`default_fibres`).
    targets : sequence of str, optional
    ranges : dict, optional
        Prior ranges (SI) per parameter name.
    lmax, shore, hybrid_method
        Feature options (:class:`FeatureSpec`).
    prior_signals : ndarray, shape (n, N), optional
        Raw voxels of the data the estimator is for: a random sample of them is fitted
        and the training parameters are drawn around the fits, fibre counts included
        (empirical Bayes, :mod:`microlearn.learning.empirical`) instead of from the
        model's priors. ``n_fibres`` then defaults to the fitted proportions.
    prior_fit : dict, optional
        Options of :func:`~microlearn.learning.empirical.fit_sample` (``n_fit``,
        ``method``, ``crossings``, ``sigma``).
    empirical : dict of int -> ndarray, optional
        An empirical prior already fitted by
        :func:`~microlearn.learning.empirical.fit_sample` (instead of ``prior_signals``),
        e.g. to train several estimators on one prior.
    model_share : float
        With an empirical prior, this share of the training samples is drawn from the
        model's priors (the training fibre count plus 10 % free water, or the family's
        mixture with ``n_fibres="auto"``) instead: a defensive mixture, so that voxels whose
        fits say little (CSF partial volume, where ODI is unidentifiable) keep a wide
        posterior and an honest std.
    noise_signals : ndarray, shape (n, N), optional
        Raw data voxels whose noise the training signals get when the prior is the
        model's (with ``prior_signals`` their own noise is used).
    noise : NoiseProfile, optional
        A noise profile already measured (:func:`~microlearn.learning.noise.noise_profile`).
    calibrate : bool
        With a data prior (one fibre count), map the learned maps linearly onto the fit's
        on simulated voxels (:func:`~microlearn.learning.agreement.fit_calibration`), so
        they carry the fit's noise bias as ``fit`` does.
    random_state : int
    progress : bool
        Progress bars for simulation and training.
    estimator_options
        Passed to the estimator's constructor (e.g. ``epochs``, ``hidden_units``).
    """
    base = resolve_model(model)
    reference = model_reference(base)
    if base.spherical_mean:
        lmax = 0  # direction-averaged model: only the shells' mean signals are features
    t_prior = 0.0
    if not 0.0 <= float(model_share) < 1.0:
        raise ValueError(f"model_share must lie in [0, 1), not {model_share}.")
    if prior_signals is not None and empirical is not None:
        raise ValueError("train: give prior_signals (to fit a prior) or empirical (a fitted "
                         "one), not both.")
    auto = isinstance(n_fibres, str)
    if auto and n_fibres != "auto":
        raise ValueError(f"n_fibres: give a count, a list, a dict or 'auto', not {n_fibres!r}.")
    record = family_of(base)
    own = base.n_fibres if record is None or not record.has_fibres else (base.n_fibres or 1)
    if empirical is not None and (n_fibres is None or auto):
        n_fibres = {k: len(v) for k, v in empirical.items() if len(v)}
    if prior_signals is not None:
        from .empirical import fit_prior

        several = n_fibres is not None and not auto and len(
            parse_fibre_mixture(base, n_fibres)) > 1
        options = {"crossings": auto or several, **(prior_fit or {})}
        t0 = time.perf_counter()
        empirical, measured = fit_prior(base, acq, prior_signals, random_state=random_state,
                                        **options)
        noise = noise if noise is not None else measured
        t_prior = time.perf_counter() - t0
        if n_fibres is None or auto:
            n_fibres = {k: len(v) for k, v in empirical.items() if len(v)}
    elif noise_signals is not None and noise is None and snr is None:
        from .empirical import measure_noise

        noise = measure_noise(base, acq, noise_signals)
    if snr is not None:
        noise = None  # an explicit SNR wins
    if n_fibres is None or auto:
        n_fibres = default_fibres(base)
    mix = parse_fibre_mixture(base, n_fibres)
    counts = sorted(k for k in mix if k) or [0]  # free water (0) comes with any count
    crossing = len(counts) > 1
    emulates = {"n_fibres": "auto" if crossing else int(counts[0]),
                "method": (prior_fit or {}).get("method", "mix")}
    spec = FeatureSpec(kind=features, lmax=int(lmax), shore=bool(shore),
                       hybrid_method=hybrid_method, model=reference)
    est = make_estimator(estimator, optimizer, learning_rate=learning_rate,
                         random_state=random_state, progress=progress, **estimator_options)
    t0 = time.perf_counter()
    wide_mix = default_fibres(base) if crossing or not own else (
        {own: 0.9, 0: 0.1} if record is not None and 0 in record.fibre_counts else {own: 1.0})
    ts = _training_set(base, acq, n_samples, mix, snr if snr is not None else 30.0,
                       targets, ranges, random_state, progress, empirical, model_share,
                       noise, wide_mix)
    t_sim = time.perf_counter() - t0
    X, bad = spec.compute(ts.signal, acq, progress=progress)
    t_feat = time.perf_counter() - t0 - t_sim
    est.fit(X[~bad], ts.targets[~bad])
    calibration = None
    if empirical is not None and not crossing and calibrate:
        from .agreement import fit_calibration

        partial = TrainedEstimator(model=reference, n_fibres={}, acq=acq, features=spec,
                                   target_names=ts.target_names, estimator=est,
                                   estimator_name=estimator, info={"emulates_fit": emulates})
        calibration = fit_calibration(partial, ts.signal, random_state=random_state)
    seconds = time.perf_counter() - t0 + t_prior
    log.info("trained %s in %.1f s (prior fits %.1f s, simulate %.1f s, features %.1f s)",
             estimator, seconds, t_prior, t_sim, t_feat)
    snr_value = float(snr) if snr is not None else (
        float(np.median(noise.snr)) if noise is not None else 30.0)
    info = {"n_samples": int(n_samples), "snr": round(snr_value, 2),
            "feature_distance": _feature_distance(X[~bad]),
            "noise": noise.summary() if noise is not None else {"snr": snr_value},
            "emulates_fit": emulates, "fit_calibration": calibration,
            "random_state": random_state,
            "seconds": round(seconds, 3), "simulate_seconds": round(t_sim, 3),
            "feature_seconds": round(t_feat, 3), "n_features": int(X.shape[1]),
            "feature_range": np.quantile(X[~bad], PRIOR_QUANTILES, axis=0).tolist(),
            "prior": "model" if empirical is None else {
                "kind": "empirical", "fit_seconds": round(t_prior, 3),
                "model_share": float(model_share),
                "fitted_voxels": {str(k): int(len(v)) for k, v in empirical.items()}}}
    return TrainedEstimator(model=reference, n_fibres={str(k): v for k, v in mix.items()},
                            acq=acq, features=spec, target_names=ts.target_names,
                            estimator=est, estimator_name=estimator,
                            optimizer=getattr(est, "wide_optimizer", None)
                            if estimator == "wide-deep" else optimizer, info=info)


def _feature_distance(X) -> dict | None:
    """Mean, whitening matrix and 99.9 % quantile of the squared Mahalanobis distance of
    the training features (the out-of-prior test), JSON-ready; None for too few samples."""
    if len(X) < 10 * (X.shape[1] + 1):
        return None
    mean = X.mean(axis=0)
    cov = np.cov(X, rowvar=False).reshape(X.shape[1], X.shape[1])
    cov += 1e-9 * np.trace(cov) / len(cov) * np.eye(len(cov))
    w, v = np.linalg.eigh(cov)
    whiten = v / np.sqrt(np.clip(w, w.max() * 1e-12, None))
    dist = {"mean": mean.tolist(), "whiten": whiten.tolist()}
    dist["q999"] = float(np.quantile(_mahalanobis2(X, dist), 0.999))
    return dist


def _mahalanobis2(X, dist) -> np.ndarray:
    z = (X - np.asarray(dist["mean"])) @ np.asarray(dist["whiten"])
    return np.einsum("ij,ij->i", z, z)


def _training_set(model, acq, n_samples, mix, snr, targets, ranges, random_state, progress,
                  empirical, model_share, noise=None, wide_mix=None):
    """The training set: from the model's priors, or an empirical prior with a
    ``model_share`` of model-prior samples (fibre mixture ``wide_mix``) mixed in and
    shuffled."""
    from .datasets import TrainingSet

    kw = {"snr": snr, "targets": targets, "ranges": ranges, "progress": progress,
          "noise": noise}
    n_model = int(round(float(model_share) * int(n_samples))) if empirical is not None else 0
    ts = make_training_set(model, acq, int(n_samples) - n_model, n_fibres=mix,
                           random_state=random_state, empirical=empirical, **kw)
    if n_model == 0:
        return ts
    seed = None if random_state is None else int(random_state) + 7919
    wide = make_training_set(model, acq, n_model, random_state=seed,
                             n_fibres=wide_mix or default_fibres(model), **kw)
    order = np.random.default_rng(seed).permutation(int(n_samples))
    return TrainingSet(signal=np.concatenate([ts.signal, wide.signal])[order],
                       targets=np.concatenate([ts.targets, wide.targets])[order],
                       target_names=ts.target_names,
                       n_fibres=np.concatenate([ts.n_fibres, wide.n_fibres])[order])
