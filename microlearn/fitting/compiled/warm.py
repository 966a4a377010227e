"""Load (or compile and cache) the compiled fitting kernels before they are needed.

A fresh process pays, on its first compiled fit, numba's one-off start (its CPU target's
typing and lowering registries, ~0.3-0.6 s) and the loading of each cached kernel
(~20-50 ms each); without a cache, compilation (seconds to minutes). :func:`warm_up`
pays these on a few simulated voxels; :func:`prewarm` does it in a background thread (a
command reading its data, a dashboard panel being shown), and ``python -m
microlearn.fitting.compiled.warm`` compiles and caches every kernel once (``make install``).
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

#: Built-in scheme each model family is warmed on.
#: (model, n_fibres, method) compiled and cached at install time.
INSTALL_JOBS = (("noddi", 1, "mix"), ("noddi", 1, "interior-point"), ("noddi", 1, "dictionary"),
                ("noddi", 2, "mix"), ("noddi", 3, "mix"), ("noddi", "auto", "mix"),
                ("activeax", 1, "mix"),
                ("activeax", 1, "dictionary"), ("ivim", 0, "dictionary"),
                ("sandi", 0, "posterior"),
                # the one compiled core (any other model): MIX, interior point, quality
                ("zcd", 1, "mix"), ("zcd", 1, "interior-point"), ("ivim", 0, "mix"))
#: Voxels fitted by a warm-up.
WARM_VOXELS = 4


def warm_up(model: str = "noddi", n_fibres: int = 1, method: str = "mix", *, acq=None) -> float:
    """Fit ``WARM_VOXELS`` simulated voxels so the engine's kernels are loaded; seconds.

    Parameters
    ----------
    model : str, dict or MultiCompartmentModel
        Family name, model spec or model.
    n_fibres : int or "auto"
        ``"auto"`` warms :func:`~microlearn.fitting.selection.fit_auto` (0-3 fibres per
        voxel: its compiled NODDI path and tables).
    method : str
        Fitting engine.
    acq : Acquisition, optional
        Acquisition to warm on (default: the family's built-in scheme).
    """
    import numpy as np

    from ...acquisition import Acquisition
    from ...models.registry import default_scheme
    from ...models.spec import resolve_model
    from ...simulate import simulate_dataset
    from ..api import fit

    t0 = time.perf_counter()
    if n_fibres == "auto":
        from ..selection import fit_auto

        m = resolve_model(model, 2)
        acq = acq if acq is not None else Acquisition.scheme(default_scheme(m))
        _, _, y = simulate_dataset(m, acq, WARM_VOXELS, snr=30, random_state=0)
        fit_auto(model, acq, 1000.0 * np.asarray(y), method=method, sigma=1000.0 / 30,
                 workers=1)
        return time.perf_counter() - t0
    m = resolve_model(model, n_fibres)
    acq = acq if acq is not None else Acquisition.scheme(default_scheme(m))
    _, _, y = simulate_dataset(m, acq, WARM_VOXELS, snr=30, random_state=0)
    fit(m, acq, 1000.0 * np.asarray(y), method=method, sigma=1000.0 / 30, workers=1)
    return time.perf_counter() - t0


def warm_jobs(model: str, n_fibres, method: str) -> tuple:
    """The warm-up jobs of a fit (``n_fibres`` "auto": one :func:`fit_auto` warm-up)."""
    from ...models.registry import family_of

    record = family_of(model)
    if record is not None and not record.has_fibres:
        return ((model, record.default_fibres, method),)
    if n_fibres == "auto":
        return ((model, "auto", method),)
    return ((model, int(n_fibres), method),)


def prewarm(jobs=(("noddi", 1, "mix"),)) -> threading.Thread:
    """Run :func:`warm_up` for each ``(model, n_fibres, method)`` in a daemon thread.

    Returns the started thread; its ``seconds`` attribute holds the time spent once it
    has finished (``None`` before). Failures are logged, never raised: the real fit will
    meet and report them.
    """

    def work():
        t0 = time.perf_counter()
        for job in jobs:
            try:
                warm_up(*job)
            except Exception as err:  # noqa: BLE001 - best effort, the fit reports errors
                log.debug("pre-warming %s failed: %s", job, err)
        thread.seconds = time.perf_counter() - t0

    thread = threading.Thread(target=work, name="microlearn-prewarm", daemon=True)
    thread.seconds = None
    thread.start()
    return thread


def _warm_signals() -> None:
    """Compile the core's batch signal and Jacobian (predictions, Cramér–Rao bounds)."""
    import numpy as np

    from ...acquisition import Acquisition
    from ...models.builtin import zcd
    from .assembly import build_plan, signals

    model = zcd()
    plan = build_plan(model, Acquisition.scheme("activeax"))
    x = np.full((1, model.parameters.size + 1), 0.5)
    for want_jac in (False, True):
        signals(x, plan.arrays, want_jac, 8, 2)


def main() -> None:
    """Compile and cache every kernel of ``INSTALL_JOBS`` (fast when already cached)."""
    import warnings

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for job in INSTALL_JOBS:
            log.info("warm-up %-28s %6.2f s", "/".join(map(str, job)), warm_up(*job))
        _warm_signals()
    log.info("compiled fitting kernels ready (%.1f s)", time.perf_counter() - t0)


if __name__ == "__main__":
    main()
