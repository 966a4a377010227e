"""Noise record and fit-quality summary of ``fit.json``; the ``--sigma-map`` check."""

from __future__ import annotations

from pathlib import Path


def check_sigma_map(path, dataset) -> str:
    """The σ map's path after checking it is a 3-D map of the DWI's spatial shape."""
    from ..io import load_nifti

    path = Path(path)
    img = load_nifti(path)
    shape = tuple(img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if shape != tuple(dataset.shape):
        raise ValueError(f"{path}: σ map shape {tuple(img.shape)} does not match the DWI's "
                         f"spatial shape {tuple(dataset.shape)}; give the σ map computed on "
                         "this image (e.g. by MP-PCA denoising of it).")
    return str(path.resolve())


def noise_record(args, sigma, acq) -> dict:
    """What noise model the fit used, for ``fit.json``."""
    if getattr(args, "sigma_map", None):
        return {"model": "rician", "sigma": "map", "source": str(args.sigma_map)}
    if sigma is None or float(sigma) == 0:
        return {"model": "gaussian", "sigma": None,
                "source": "--sigma 0" if args.sigma is not None else
                "fewer than 2 b0 per echo time: no Rician floor"}
    if args.sigma is not None:
        return {"model": "rician", "sigma": float(sigma), "source": "--sigma"}
    from ..fitting.noise import SIGMA_METHOD

    source = "b0 repeats" + (" of each echo time, pooled" if acq.n_te > 1 else "")
    return {"model": "rician", "sigma": float(sigma), "source": source,
            "estimator": SIGMA_METHOD}


def quality_summary(maps, mask) -> dict:
    """See :func:`microlearn.fitting.quality.summarise` (fit.json's ``quality``)."""
    from ..fitting.quality import summarise

    return summarise(maps, mask)


def identifiability(model, maps, mask) -> dict:
    """See :func:`microlearn.fitting.quality.identifiability` (fit.json's
    ``identifiability``)."""
    from ..fitting.quality import identifiability as check

    return check(model, maps, mask)
