"""DIPY building blocks of the crossing pipeline: responses, CSD / MSMT-CSD peaks, HMRF, SHORE.

Everything here calls DIPY; nothing re-implements a deconvolution. Functions take voxel
signals as ``(V, N)`` arrays (the caller applies the mask) normalised by their b0 mean,
and an :class:`~microlearn.acquisition.Acquisition` (SI inside, s/mm² only at the DIPY
boundary through :meth:`Acquisition.to_dipy`).

Thresholds (documented once, used by :func:`csd_peaks` and :func:`msmt_peaks`):

* ``relative_peak_threshold`` — a peak is kept when its fODF amplitude is at least this
  fraction of the voxel's largest peak (DIPY ``peaks_from_model``). The plain-DIPY
  counting rule uses 0.5; the model-selection pipeline takes candidates at 0.1 and lets
  an information criterion decide.
* ``min_separation_angle`` — peaks closer than this (degrees) are merged: 25°.
* ``npeaks`` — at most 3 fibres per voxel.
* FA < 0.14 (tensor on b ≤ 1000 s/mm²) marks a 0-fibre voxel in the plain-DIPY rule.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from ..units import S_PER_MM2

log = logging.getLogger(__name__)

#: Relative fODF peak threshold of plain DIPY peak counting.
COUNT_THRESHOLD = 0.5
#: Relative threshold for candidate directions of the model-selection pipeline.
CANDIDATE_THRESHOLD = 0.1
#: Minimum angle between two peaks, degrees.
MIN_SEPARATION = 25.0
#: FA below which plain DIPY counting reports 0 fibres.
FA_ZERO = 0.14
#: FA above which a voxel is a single-fibre response voxel (DIPY's default 0.7).
RESPONSE_FA = 0.7
#: Shells up to this b (s/m²) feed the tensor used for FA / MD.
DTI_B_MAX = 1.2e9


def shell_subset(acq, which: str = "highest") -> np.ndarray:
    """Indices of the b0 measurements plus one shell (``"highest"``) or all (``"all"``)."""
    if which == "all":
        return np.arange(acq.n_measurements)
    if which != "highest":
        raise ValueError(f"shell must be 'highest' or 'all', got {which!r}.")
    shells = acq.shells
    if shells.size == 0:
        raise ValueError("the acquisition has no diffusion-weighted shell; CSD needs one.")
    top = int(np.argmax(acq.shell_bvals))
    return np.flatnonzero(acq.b0_mask | (acq.shell_index == top))


#: Largest spherical-harmonic order of the CSD fODF.
SH_ORDER_CAP = 8


def supported_sh_order(acq, shell: str = "highest", cap: int = SH_ORDER_CAP) -> int:
    """Largest even spherical-harmonic order the shell's directions determine.

    Order L has (L + 1)(L + 2)/2 coefficients; a shell with fewer gradient directions than
    that cannot fix them (25 directions: order 4; order 6 needs 28, order 8 needs 45).
    """
    index = shell_subset(acq, shell)
    n_dirs = int(np.sum(~acq.b0_mask[index]))
    order = 0
    while order + 2 <= cap and (order + 3) * (order + 4) // 2 <= n_dirs:
        order += 2
    return order


def countable_fibres(order: int) -> int:
    """Fibre populations an fODF of spherical-harmonic ``order`` can separate: 1 below
    order 4, 2 at order 4 (crossings of ~60° and more), 3 from order 6."""
    return 1 if order < 4 else (2 if order < 6 else 3)


def fibre_cap(acq, max_fibres: int) -> tuple[int, str | None]:
    """Fibre populations ``acq`` can count, at most ``max_fibres``, and why fewer (or None).

    Examples: 25 directions on the CSD shell support order 4, so 3 fibres are not counted.
    """
    order = supported_sh_order(acq)
    cap = min(max_fibres, countable_fibres(order))
    if cap == max_fibres:
        return cap, None
    n_dirs = int(np.sum(~acq.b0_mask[shell_subset(acq)]))
    return cap, (f"{n_dirs} gradient directions on the CSD shell support spherical-harmonic "
                 f"order {order} (order {order + 2} needs {(order + 3) * (order + 4) // 2}): "
                 f"at most {cap} fibre population(s) per voxel are counted, not "
                 f"{max_fibres}; more directions (or a second shell) are needed for "
                 f"{max_fibres}.")


def _volume(y):
    """(V, N) signals as a DIPY volume (V, 1, 1, N)."""
    return np.asarray(y, dtype=float)[:, None, None, :]


def tensor_fit(acq, y, *, b_max=3.5e9):
    """DIPY's OLS tensor fit of b0-normalised signals ``y`` (V, N).

    Uses measurements with b <= ``b_max`` (s/m²) when at least 6 weighted ones remain,
    else all of them. OLS is ~30x faster than WLS here.
    """
    from dipy.reconst.dti import TensorModel

    keep = acq.bvals <= b_max
    if np.count_nonzero(keep & ~acq.b0_mask) < 6:
        keep = np.ones(acq.n_measurements, bool)
    sub = acq.subset(np.flatnonzero(keep))
    data = np.clip(np.asarray(y, dtype=float)[:, keep], 1e-6, None)
    return TensorModel(sub.to_dipy(), fit_method="OLS").fit(data)


def tensor_scalars(acq, y) -> tuple[np.ndarray, np.ndarray]:
    """FA and MD (m²/s) of DIPY's tensor fit on the shells with b <= 1200 s/mm².

    Parameters
    ----------
    acq : Acquisition
    y : ndarray, shape (V, N)
        b0-normalised signals.

    Returns
    -------
    fa : ndarray, shape (V,)
    md : ndarray, shape (V,)
    """
    fit = tensor_fit(acq, y, b_max=DTI_B_MAX)
    fa = np.nan_to_num(np.asarray(fit.fa))
    md = np.nan_to_num(np.asarray(fit.md)) / S_PER_MM2  # mm²/s -> m²/s
    return fa, md


def ssst_response(acq, y, index=None, *, fa_thr: float = RESPONSE_FA):
    """Single-fibre response (DIPY ``mask_for_response_ssst`` + ``response_from_mask_ssst``).

    The response region is the whole set of voxels (``roi_radii`` covers it); when fewer
    than 10 voxels pass ``fa_thr`` the threshold is lowered in steps of 0.1 (logged).

    Returns
    -------
    response : tuple
        DIPY's ``(evals, S0)`` response.
    n_voxels : int
        Voxels that formed the response.
    """
    from dipy.reconst.csdeconv import mask_for_response_ssst, response_from_mask_ssst

    index = shell_subset(acq) if index is None else index
    gtab = acq.subset(index).to_dipy()
    vol = _volume(np.asarray(y)[:, index])
    radii = (vol.shape[0], 1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        thr = fa_thr
        while True:
            mask = mask_for_response_ssst(gtab, vol, roi_radii=radii, fa_thr=thr)
            if mask.sum() >= 10 or thr <= 0.3:
                break
            thr -= 0.1
        if thr != fa_thr:
            log.info("response: FA threshold lowered to %.1f (%d voxels)", thr, int(mask.sum()))
        if mask.sum() == 0:
            raise ValueError("no voxel qualifies for the single-fibre response (FA > 0.3); "
                             "check the mask and the bvecs.")
        response, _ = response_from_mask_ssst(gtab, vol, mask)
    return response, int(mask.sum())


def _peaks(model, vol, relative_peak_threshold, min_separation_angle, npeaks):
    from dipy.data import default_sphere
    from dipy.direction.peaks import peaks_from_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pk = peaks_from_model(model, vol, default_sphere, relative_peak_threshold,
                              min_separation_angle, npeaks=npeaks, return_sh=False)
    dirs = np.asarray(pk.peak_dirs)[:, 0, 0]
    values = np.asarray(pk.peak_values)[:, 0, 0]
    dirs = np.where(values[..., None] > 0, dirs, np.nan)
    return dirs, values


def csd_peaks(acq, y, *, relative_peak_threshold: float = COUNT_THRESHOLD,
              min_separation_angle: float = MIN_SEPARATION, npeaks: int = 3,
              shell: str = "highest", sh_order_max: int | None = None, response=None):
    """fODF peaks of DIPY's single-shell CSD (``ConstrainedSphericalDeconvModel``).

    Parameters
    ----------
    acq : Acquisition
    y : ndarray, shape (V, N)
        b0-normalised signals.
    relative_peak_threshold, min_separation_angle, npeaks
        ``peaks_from_model`` settings (see the module docstring).
    shell : {"highest", "all"}
        Measurements deconvolved: b0s + the highest shell (default, as usual for CSD).
    sh_order_max : int, optional
        fODF order; default the largest the shell supports (:func:`supported_sh_order`,
        at most 8).
    response : tuple, optional
        DIPY response; estimated with :func:`ssst_response` when absent.

    Returns
    -------
    directions : ndarray, shape (V, npeaks, 3)
        Unit peak directions, NaN where there is no peak.
    values : ndarray, shape (V, npeaks)
        fODF amplitudes (0 where there is no peak).
    """
    from dipy.reconst.csdeconv import ConstrainedSphericalDeconvModel

    index = shell_subset(acq, shell)
    if response is None:
        response, _ = ssst_response(acq, y, index)
    gtab = acq.subset(index).to_dipy()
    if sh_order_max is None:
        sh_order_max = max(2, supported_sh_order(acq, shell))
    with warnings.catch_warnings():  # DIPY's note on its legacy SH basis
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        model = ConstrainedSphericalDeconvModel(gtab, response, sh_order_max=sh_order_max)
    return _peaks(model, _volume(np.asarray(y)[:, index]), relative_peak_threshold,
                  min_separation_angle, npeaks)


def tissue_classes(md, *, beta: float = 0.1, max_iter: int = 20) -> np.ndarray:
    """CSF / GM / WM labels by DIPY's HMRF (``TissueClassifierHMRF``) on an MD image.

    DIPY adds a background class to ``nclasses``; voxels outside the brain are filled
    with the brain's median MD so that every class holds brain voxels, and the classes
    are read by mean MD. When the image has only two MD populations (no GM-like class,
    e.g. a simulated set of CSF and white-matter voxels) the 3-class fit leaves a class
    empty; the classification is then repeated with two classes (tissue, CSF).

    Parameters
    ----------
    md : ndarray, shape (X, Y, Z) or (V,)
        Mean diffusivity (m²/s), 0 outside the brain. A 1-D array is classified as a
        (V, 1, 1) image without spatial smoothing (its order carries no neighbourhood).
    beta : float
        HMRF smoothing weight.

    Returns
    -------
    ndarray of uint8, same shape as ``md``
        0 outside the brain, 1 WM-like (lowest MD), 2 GM-like, 3 CSF-like (highest MD).
    """
    from dipy.segment.tissue import TissueClassifierHMRF

    md = np.asarray(md, dtype=float)
    flat = md.ndim == 1
    image = md.reshape(md.shape + (1, 1)) if flat else md
    if image.ndim != 3:
        raise ValueError(f"tissue_classes: md must be 1-D or 3-D, got shape {md.shape}.")
    brain = image > 0
    if not brain.any():
        raise ValueError("tissue_classes: the MD image is empty (no positive voxel).")
    filled = np.where(brain, image, np.median(image[brain]))
    for n_extra, names in ((2, (1, 2, 3)), (1, (1, 3))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, labels, _ = TissueClassifierHMRF(verbose=False).classify(
                filled / filled.max(), n_extra, 0.0 if flat else beta, max_iter=max_iter)
        if np.all(labels[brain] >= 0) and np.unique(labels[brain]).size == len(names):
            break
    else:
        raise ValueError("tissue_classes: the HMRF classification did not converge; "
                         "check the mask and the MD image.")
    out = np.zeros(image.shape, np.uint8)
    out[brain] = np.asarray(names, np.uint8)[labels[brain]]
    return out.reshape(md.shape)


def msmt_peaks(acq, y, *, relative_peak_threshold: float = COUNT_THRESHOLD,
               min_separation_angle: float = MIN_SEPARATION, npeaks: int = 3,
               sh_order_max: int = 8, labels=None):
    """WM-fODF peaks of DIPY's multi-shell multi-tissue CSD (``MultiShellDeconvModel``).

    Tissue responses come from ``response_from_mask_msmt`` with masks: WM = FA > 0.7
    (lowered as in :func:`ssst_response` when too few), CSF = HMRF CSF class, GM = HMRF
    GM class with FA < 0.2 (the lowest-FA tenth of the non-CSF voxels when empty).

    Parameters
    ----------
    y : ndarray, shape (V, N)
        b0-normalised signals.
    labels : ndarray of uint8, shape (V,), optional
        :func:`tissue_classes` of these voxels (computed when absent).

    Returns
    -------
    directions, values : as :func:`csd_peaks`
    fractions : ndarray, shape (V, 3)
        Volume fractions (WM, GM, CSF) from the multi-tissue fit.
    """
    from dipy.reconst.mcsd import (
        MultiShellDeconvModel,
        multi_shell_fiber_response,
        response_from_mask_msmt,
    )

    y = np.asarray(y, dtype=float)
    fa, md = tensor_scalars(acq, y)
    if labels is None:
        labels = tissue_classes(np.where(md > 0, md, 0.0))
    wm = fa > RESPONSE_FA
    thr = RESPONSE_FA
    while wm.sum() < 10 and thr > 0.3:
        thr -= 0.1
        wm = fa > thr
    csf = (labels == 3) & ~wm
    gm = (labels == 2) & (fa < 0.2)
    if gm.sum() < 10:
        cand = np.flatnonzero((labels != 3) & ~wm)
        gm = np.zeros_like(wm)
        gm[cand[np.argsort(fa[cand])[: max(10, cand.size // 10)]]] = True
    for name, m in (("WM", wm), ("CSF", csf)):
        if m.sum() == 0:
            raise ValueError(f"msmt: no {name}-like voxels for the tissue responses; "
                             "use method='csd' or 'select' on this data.")
    gtab = acq.to_dipy()
    vol = _volume(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rf_wm, rf_gm, rf_csf = response_from_mask_msmt(
            gtab, vol, wm[:, None, None], gm[:, None, None], csf[:, None, None])
        ubvals = np.unique(np.round(gtab.bvals[~gtab.b0s_mask], -2))
        ubvals = np.concatenate([[0.0], ubvals])
        response = multi_shell_fiber_response(sh_order_max, ubvals, rf_wm, rf_gm, rf_csf)
        model = MultiShellDeconvModel(gtab, response, sh_order_max=sh_order_max)
        fit = model.fit(vol)
    frac = np.asarray(fit.volume_fractions)[:, 0, 0]
    dirs, values = _peaks(model, vol, relative_peak_threshold, min_separation_angle, npeaks)
    return dirs, values, frac


def shore_features(acq, data, mask=None, *, radial_order: int = 6, zeta: float = 700.0,
                   lambda_n: float = 1e-8, lambda_l: float = 1e-8) -> dict[str, np.ndarray]:
    """SHORE scalars (DIPY ``ShoreModel``/``ShoreFit``): RTOP and MSD, vectorised.

    DIPY fits SHORE voxel by voxel; without the positivity constraint the fit is one
    regularised linear map, so the map DIPY builds (cached by the model on a one-voxel
    fit) is applied to all voxels at once and DIPY's ``ShoreFit`` computes the scalars
    from the stacked coefficients.

    Parameters
    ----------
    acq : Acquisition
    data : ndarray, shape (*batch, N)
        Signals (raw or normalised; each voxel is normalised by its b0 mean).
    mask : ndarray of bool, shape (*batch,), optional
    radial_order, zeta, lambda_n, lambda_l
        ``ShoreModel`` settings (zeta in DIPY's mm units, as in its examples).

    Returns
    -------
    dict
        ``rtop`` (return-to-origin probability from the signal, m⁻³), ``rtop_pdf``
        (from the propagator, m⁻³) and ``msd`` (mean squared displacement, m²), each
        ``(*batch,)``; NaN outside the mask or where the b0 is not positive.
    """
    from dipy.reconst.shore import ShoreFit, ShoreModel

    data = np.asarray(data, dtype=float)
    if data.shape[-1] != acq.n_measurements:
        raise ValueError(f"shore_features: data has {data.shape[-1]} measurements, the "
                         f"acquisition {acq.n_measurements}.")
    batch = data.shape[:-1]
    mask = np.ones(batch, bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != batch:
        raise ValueError(f"shore_features: mask shape {mask.shape} != data shape {batch}.")
    vox = data[mask]
    b0 = vox[:, acq.b0_mask].mean(1) if acq.n_b0 else np.zeros(len(vox))
    ok = b0 > 0
    y = vox[ok] / b0[ok, None]
    gtab = acq.to_dipy()
    model = ShoreModel(gtab, radial_order=radial_order, zeta=zeta, lambdaN=lambda_n,
                       lambdaL=lambda_l)
    out = {k: np.full(batch, np.nan) for k in ("rtop", "rtop_pdf", "msd")}
    if not y.size:
        return out
    with warnings.catch_warnings():  # DIPY's note on its legacy SH basis
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        model.fit(y[0])  # builds and caches DIPY's regularised pseudo-inverse
    pinv = model.cache_get("shore_matrix_reg_pinv", key=gtab)
    coef = pinv @ y.T  # (n_coef, V)
    from scipy.special import factorial, gamma, genlaguerre

    n = np.arange(radial_order // 2 + 1)
    scale = np.array([genlaguerre(int(k), 0.5)(0) for k in n]) * np.sqrt(
        factorial(n) / (2 * np.pi * zeta**1.5 * gamma(n + 1.5)))
    coef = coef / (scale @ coef[: n.size])  # DIPY's signal_0 normalisation
    fit = ShoreFit(model, coef)
    mm3, mm2 = 1e9, 1e-6  # mm⁻³ -> m⁻³, mm² -> m²
    values = {"rtop": fit.rtop_signal() * mm3, "rtop_pdf": fit.rtop_pdf() * mm3,
              "msd": fit.msd() * mm2}
    for k, v in values.items():
        flat = np.full(len(vox), np.nan)
        flat[ok] = v
        out[k][mask] = flat
    return out
