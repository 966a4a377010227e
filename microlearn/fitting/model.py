"""A DIPY-style face over :func:`microlearn.fitting.fit`: ``Model(...).fit(data, mask)``.

DIPY's reconstruction models (``dipy.reconst.base.ReconstModel`` / ``ReconstFit``,
``dipy.reconst.dti.TensorModel`` / ``TensorFit``) bind a model to a gradient table once,
then fit any data array with it; the fit is a view over one parameter array with named
properties, ``[]`` indexing and ``predict(gtab, S0=None)``. :class:`Model` and
:class:`Fit` follow those conventions for every microlearn model, so that a DIPY user can
write ``Model("noddi", gtab).fit(data, mask).odi`` where they write
``TensorModel(gtab).fit(data, mask).fa`` today.

Examples
--------
>>> from dipy.core.gradients import gradient_table
>>> from dipy.data import get_fnames
>>> from dipy.io.gradients import read_bvals_bvecs
>>> from dipy.io.image import load_nifti
>>> from microlearn.fitting import Model
>>> fdata, fbval, fbvec = get_fnames("small_64D")
>>> data, affine = load_nifti(fdata)
>>> bvals, bvecs = read_bvals_bvecs(fbval, fbvec)
>>> gtab = gradient_table(bvals, bvecs=bvecs, big_delta=0.0431, small_delta=0.0106)
>>> noddi = Model("noddi", gtab)                                 # doctest: +SKIP
>>> fit = noddi.fit(data, mask=data[..., 0] > 0)                # doctest: +SKIP
>>> fit.odi.shape, fit.mu.shape                                 # doctest: +SKIP
((10, 10, 10), (10, 10, 10, 3))
>>> fit[5, 5, 5].odi, fit[5].shape, fit.predict(gtab).shape     # doctest: +SKIP
(0.21..., (10, 10), (10, 10, 10, 65))
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import warnings

import numpy as np

from ..acquisition import HCP_TIMING, Acquisition
from ..models.core import MultiCompartmentModel
from .api import FITTERS, FitResult, fit, methods_for

log = logging.getLogger(__name__)

#: Keyword options of :func:`fit` that a :class:`Model` takes at construction.
FIT_OPTIONS = ("workers", "block_size", "quality", "progress")
#: Constructor arguments that are not engine options.
_NOT_ENGINE = {"self", "model", "acq", "args", "kwargs", "kw", "options"}


# ---------------------------------------------------------------------- inputs
def as_acquisition(gtab_or_acq, *, timings_from: Acquisition | None = None) -> Acquisition:
    """An :class:`~microlearn.acquisition.Acquisition` from a DIPY gradient table or itself.

    Parameters
    ----------
    gtab_or_acq : Acquisition or dipy.core.gradients.GradientTable
        A gradient table has bvals in s/mm² and, optionally, ``small_delta`` and
        ``big_delta`` in s (DIPY's units).
    timings_from : Acquisition, optional
        Whose δ, Δ and TE fill a gradient table without timings (when they are one value
        each); the HCP timings otherwise.

    Warns
    -----
    UserWarning
        When a gradient table has no ``small_delta``/``big_delta`` and timings are
        defaulted (the warning names the values).
    """
    if isinstance(gtab_or_acq, Acquisition):
        return gtab_or_acq
    if not (hasattr(gtab_or_acq, "bvals") and hasattr(gtab_or_acq, "bvecs")):
        raise ValueError(f"gtab: expected a dipy GradientTable or a microlearn Acquisition, "
                         f"got {type(gtab_or_acq).__name__}; build one with "
                         "dipy.core.gradients.gradient_table(bvals, bvecs=bvecs).")
    small = getattr(gtab_or_acq, "small_delta", None)
    big = getattr(gtab_or_acq, "big_delta", None)
    if small is not None and big is not None:
        return Acquisition.from_dipy(gtab_or_acq)
    source, timing = "the HCP protocol", dict(HCP_TIMING)
    if timings_from is not None and all(
            np.allclose(getattr(timings_from, k), getattr(timings_from, k).flat[0])
            for k in ("delta", "Delta", "TE")):
        source = "the model's acquisition"
        timing = {k: float(np.ravel(getattr(timings_from, k))[0]) for k in ("delta", "Delta",
                                                                            "TE")}
    delta = float(small) if small is not None else timing["delta"]
    Delta = float(big) if big is not None else timing["Delta"]
    warnings.warn(f"gtab has no {'small_delta' if small is None else ''}"
                  f"{'/' if small is None and big is None else ''}"
                  f"{'big_delta' if big is None else ''}: using the timings of {source}, "
                  f"δ = {delta * 1e3:.4g} ms, Δ = {Delta * 1e3:.4g} ms, "
                  f"TE = {timing['TE'] * 1e3:.4g} ms. Models with restricted compartments "
                  "(cylinders, spheres) depend on them: build the table with "
                  "gradient_table(..., big_delta=Δ, small_delta=δ) in s, or pass an "
                  "Acquisition.", UserWarning, stacklevel=3)
    return Acquisition.from_dipy(gtab_or_acq, delta=delta, Delta=Delta, TE=timing["TE"])


def as_model(model, n_fibres: int | None = None) -> MultiCompartmentModel:
    """A model from a family name, a spec path/JSON, or a model, with ``n_fibres`` fibres.

    Parameters
    ----------
    model : str, path or MultiCompartmentModel
        A registered family (``"noddi"``), a spec written by ``model.to_json()`` (path or
        text), or a model object.
    n_fibres : {0, 1, 2, 3}, optional
        Fibre populations (families with fibres; a composed model keeps its own).
    """
    from ..models.registry import FAMILIES, family
    from ..models.spec import load_model

    if isinstance(model, str) and model in FAMILIES:
        return family(model).build(n_fibres)
    try:
        built = load_model(model)
    except TypeError:
        raise ValueError(f"model: expected a family name, a spec path or a "
                         f"MultiCompartmentModel, got {type(model).__name__}.") from None
    return built if n_fibres is None else built.with_fibres(n_fibres)


def _init_options(cls) -> set[str] | None:
    """Keyword names ``cls(model, acq, ...)`` accepts, following ``**kw`` up the MRO.

    None when some ``**kw`` leads nowhere that can be read (anything is accepted).
    """
    names: set[str] = set()
    for klass in inspect.getmro(cls) if inspect.isclass(cls) else (cls,):
        init = klass.__init__ if inspect.isclass(klass) else klass
        if inspect.isclass(klass) and "__init__" not in vars(klass):
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                  and p.name not in _NOT_ENGINE}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None


def engine_options(method: str, model, acq) -> set[str] | None:
    """The engine options ``fit(model, acq, data, method=method, **options)`` accepts.

    Read from the fitting registry when its record lists them (an ``options`` attribute),
    else from the signatures of the engines that can run ``method`` for this model: the
    accelerated one that applies and the generic one. None when they cannot be read.
    """
    record = FITTERS[method]
    listed = getattr(record, "options", None)
    if listed is not None:
        return set(listed)
    classes = []
    try:
        from .api import engine_class

        classes.append(engine_class(method, model, acq))
    except Exception as exc:  # noqa: BLE001 - the choice is the engines' business
        log.debug("engine_class(%s) unavailable: %s", method, exc)
    try:
        from .compiled import generic

        classes.append(generic(method))
    except Exception as exc:  # noqa: BLE001
        log.debug("generic engine of %s unavailable: %s", method, exc)
    if not classes and inspect.isclass(record):
        classes.append(record)
    found = [_init_options(c) for c in classes]
    if not found or any(f is None for f in found):
        return None
    return set().union(*found) | {"fast"}


# ---------------------------------------------------------------------- model
class Model:
    """A microlearn model bound to an acquisition and a fitting method (DIPY-style).

    Parameters
    ----------
    model : str, path or MultiCompartmentModel
        A registered family (``"noddi"``, ``"activeax"``, ``"ivim"``, ``"sandi"``...), a
        model spec (path or JSON text from ``model.to_json()``), or a model object.
    gtab : dipy.core.gradients.GradientTable or Acquisition
        The acquisition of the data to fit. A gradient table's bvals are in s/mm² and its
        ``small_delta``/``big_delta`` in s; without them, the HCP timings are used and a
        warning says so.
    method : str, optional
        Fitting method (``"mix"``, ``"interior-point"``, ``"dictionary"``,
        ``"posterior"``); default: the model family's (``mix`` for most).
    n_fibres : {0, 1, 2, 3}, optional
        Fibre populations (families with fibres).
    workers, block_size, quality, progress
        As in :func:`microlearn.fitting.fit`.
    options
        Engine options (e.g. ``max_iter``, ``n_candidates``); an unknown name raises a
        ``ValueError`` listing the valid ones.

    Attributes
    ----------
    model : MultiCompartmentModel
    acquisition : Acquisition
    gtab : GradientTable or Acquisition
        What was given.
    method : str
    options : dict
    """

    def __init__(self, model, gtab, *, method: str | None = None,
                 n_fibres: int | None = None, **options):
        from ..models.registry import default_method

        self.model = as_model(model, n_fibres)
        self.gtab = gtab
        self.acquisition = as_acquisition(gtab)
        method = default_method(self.model) if method is None else method
        if method not in FITTERS.names():
            raise ValueError(f"method: unknown fitting method {method!r}; choose one of "
                             f"{FITTERS.names()}.")
        usable = methods_for(self.model)
        if method not in usable:
            raise ValueError(f"method: {method!r} cannot fit model {self.model.name!r}; "
                             f"choose one of {usable}.")
        self.method = method
        valid = engine_options(method, self.model, self.acquisition)
        fit_opts = {k: options.pop(k) for k in FIT_OPTIONS if k in options}
        if valid is not None:
            bad = sorted(set(options) - valid)
            per_scan = sorted(set(bad) & {"sigma", "directions", "mask"})
            if per_scan:
                raise ValueError(f"{per_scan} belong to the scan: pass them to "
                                 f"Model.fit(data, mask, sigma=..., directions=...).")
            if bad:
                raise ValueError(
                    f"unknown option(s) {bad} for method {method!r}; valid options: "
                    f"{sorted(valid | set(FIT_OPTIONS))}.")
        self.options = {**fit_opts, **options}

    def __repr__(self) -> str:
        return (f"Model({self.model.name!r}, {self.acquisition.n_measurements} measurements, "
                f"method={self.method!r})")

    def fit(self, data, mask=None, *, sigma=None, directions=None) -> Fit:
        """Fit every voxel of ``data`` (inside ``mask``).

        Parameters
        ----------
        data : ndarray, shape (..., N)
            Raw signals, any spatial rank: ``(N,)`` for one voxel, ``(V, N)``,
            ``(X, Y, Z, N)``...
        mask : ndarray of bool, shape (...), optional
            Voxels to fit (all by default); the others get NaN maps.
        sigma : float or ndarray, shape (...), optional
            Noise standard deviation in signal units (estimated from the b0s otherwise).
        directions : ndarray, shape (..., n_fibres, 3), optional
            Starting fibre orientations (e.g. CSD peaks).

        Returns
        -------
        Fit
        """
        data = np.asarray(data)
        if data.ndim == 0:
            raise ValueError("data: expected an array of shape (..., N), got a scalar.")
        single = data.ndim == 1
        if single:  # one voxel: fit it as (1, N), hand back the 0-d view (as DIPY does)
            data = data[None]
            mask = None if mask is None else np.asarray(mask, bool).reshape(1)
            if sigma is not None and np.ndim(sigma):
                sigma = np.asarray(sigma).reshape(1)
            if directions is not None:
                directions = np.asarray(directions)[None]
        result = fit(self.model, self.acquisition, data, method=self.method, mask=mask,
                     sigma=sigma, directions=directions, **self.options)
        out = Fit(self, result)
        return out[0] if single else out

    def predict(self, model_params, S0=1.0, *, gtab=None) -> np.ndarray:
        """Signals of packed parameters (as ``Fit.model_params``), like DIPY models.

        Parameters
        ----------
        model_params : ndarray, shape (..., size)
            Packed free parameters (SI, orientations as angles).
        S0 : float or ndarray, shape (...)
            Non-diffusion-weighted signal.
        gtab : GradientTable or Acquisition, optional
            Where to predict (default: the model's acquisition).

        Returns
        -------
        ndarray, shape (..., N)
        """
        acq = self._acquisition_for(gtab)
        params = np.asarray(model_params, dtype=float)
        return np.asarray(S0, dtype=float)[..., None] * self.model.signal(acq, params)

    def _acquisition_for(self, gtab) -> Acquisition:
        if gtab is None:
            return self.acquisition
        return as_acquisition(gtab, timings_from=self.acquisition)


# ---------------------------------------------------------------------- fit
class Fit:
    """The fit of a :class:`Model`: maps by name over one parameter array (DIPY-style).

    Every map of the fit is an attribute: ``fit.odi``, ``fit.icvf``, ``fit.mu`` (unit
    vectors, shape (..., 3)), ``fit.s0``, the quality maps ``fit.residual_rms`` and
    ``fit.<name>_std``. ``fit[i, j]`` is the fit of a part of the volume.

    Attributes
    ----------
    model : Model
    result : FitResult
        The :func:`microlearn.fitting.fit` result this view wraps.
    model_params : ndarray, shape (..., size)
        Packed free parameters (SI, orientations as angles); NaN where not fitted.
    """

    def __init__(self, model: Model, result: FitResult):
        self.model = model
        self.result = result
        self._maps = None

    # -- DIPY-style accessors
    @property
    def model_params(self) -> np.ndarray:
        return self.result.params

    @property
    def shape(self) -> tuple:
        """Spatial shape of the fit (``()`` for one voxel)."""
        return self.result.mask.shape

    @property
    def mask(self) -> np.ndarray:
        return self.result.mask

    @property
    def S0_hat(self) -> np.ndarray:
        """Fitted S0 (DIPY's name; the same as ``s0``)."""
        return self.result.s0

    @property
    def map_names(self) -> list[str]:
        """Names of every map (each an attribute of the fit)."""
        return sorted(self.maps())

    def maps(self) -> dict[str, np.ndarray]:
        """Every map by name (computed once)."""
        if self._maps is None:
            self._maps = self.result.maps()
        return self._maps

    def __getattr__(self, name: str):
        if name.startswith("_") or name in ("model", "result"):
            raise AttributeError(name)
        maps = self.maps()
        if name in maps:
            return maps[name]
        raise AttributeError(f"{type(self).__name__} of {self.model.model.name!r} has no "
                             f"map {name!r}; available maps: {sorted(maps)}.")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.maps()))

    def __repr__(self) -> str:
        return (f"Fit({self.model.model.name!r}, shape={self.shape}, "
                f"{int(self.result.mask.sum())} voxels fitted)")

    def __getitem__(self, index) -> Fit:
        """The fit of ``index`` of the spatial axes (as DIPY's fits)."""
        spatial = self.shape
        if not isinstance(index, tuple):
            index = (index,)
        if len(spatial) == 0:
            raise IndexError("a single-voxel fit cannot be indexed.")
        if sum(i is not Ellipsis and i is not None for i in index) > len(spatial):
            raise IndexError(f"too many indices for a fit of shape {spatial}.")
        r = self.result
        probe = np.empty(spatial, dtype=bool)[index]  # raises IndexError as numpy does

        def cut(a):
            if a is None or np.ndim(a) == 0:
                return a
            a = np.asarray(a)
            if a.shape[:len(spatial)] != spatial:
                return a
            return a[index]

        sub = dataclasses.replace(
            r, params=cut(r.params), s0=cut(r.s0), success=cut(r.success),
            mask=cut(r.mask), sigma=cut(r.sigma), s0_te=cut(r.s0_te),
            extra={k: cut(v) for k, v in r.extra.items()})
        del probe
        return type(self)(self.model, sub)

    # -- signals
    def predict(self, gtab=None, S0=None) -> np.ndarray:
        """Model signals, shape (..., N); NaN where not fitted.

        Parameters
        ----------
        gtab : GradientTable or Acquisition, optional
            Where to predict (as ``TensorFit.predict(gtab)``); default: the model's
            acquisition, so that the prediction has the data's shape. A table without
            timings takes the model acquisition's.
        S0 : float or ndarray, shape (...), optional
            Non-diffusion-weighted signal; default: the fitted S0 (of each echo time on
            the model's own acquisition, of the shortest TE on another).

        Notes
        -----
        A spherical-mean model (SMT, SANDI) is fitted to powder averages; its prediction
        of each measurement is the powder average of the measurement's shell
        (``fit.result.predict()`` gives one value per shell).
        """
        r = self.result
        own = self.model.acquisition
        if gtab is None and S0 is None and r.acq is own:
            return r.predict()
        acq = own if gtab is None else self.model._acquisition_for(gtab)
        if S0 is None and acq is own and r.s0_te is not None:
            S0 = r.s0_te[..., own.te_index]  # (..., N): each measurement's TE group
            scale = np.broadcast_to(S0, self.shape + (acq.n_measurements,))
            return self._signals(acq, scale)
        scale = r.s0 if S0 is None else np.broadcast_to(np.asarray(S0, float), self.shape)
        return self._signals(acq, scale[..., None])

    def _signals(self, acq, scale) -> np.ndarray:
        """``scale · S/S0`` on ``acq`` where fitted, NaN elsewhere; scale (..., 1 or N)."""
        r = self.result
        out = np.full(self.shape + (acq.n_measurements,), np.nan)
        ok = r.mask & np.all(np.isfinite(r.params), axis=-1)
        out[ok] = scale[ok] * self.model.model.signal(acq, r.params[ok])
        return out
