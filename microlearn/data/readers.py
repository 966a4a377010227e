"""Acquisition readers: FSL bvals/bvecs, Camino scheme files, MRtrix gradient tables, BIDS.

Every reader returns SI values (b in s/m², times in s, G in T/m) and raises a
``ValueError`` that names the file and the fix. :func:`find_inputs` recognises the layout
of a folder (HCP, BIDS, or a folder with a scheme file / MRtrix table) and
:func:`read_acquisition` turns the files of any form into one :class:`Acquisition`, so the
same protocol written in any form gives the same acquisition.

Input forms
-----------
========================  =============================================================
form                      files
========================  =============================================================
FSL / HCP                 ``bvals`` (s/mm², or ``bvals_unit``), ``bvecs`` (3 rows or N×3,
                          image axes); timings from ``acquisition.json`` or a sidecar
Camino STEJSKALTANNER     ``VERSION: STEJSKALTANNER`` then ``x y z |G| Δ δ TE`` per
                          measurement (T/m, s); without a VERSION line, 7 columns
Camino BVECTOR            ``VERSION: BVECTOR`` then ``x y z b`` (b in s/m² unless
                          ``bvals_unit`` says otherwise); without a VERSION line, 4
                          columns, b in s/mm² when it is at most 10⁶
MRtrix                    ``x y z b`` per row (``-grad`` / ``.b``; b in s/mm², directions in
                          scanner axes, turned into image axes with the image affine)
BIDS                      ``sub-*/[ses-*/]dwi/*_dwi.nii[.gz]`` with ``.bval``, ``.bvec`` and
                          ``.json`` (inherited from parent folders as BIDS allows)
========================  =============================================================

Lines starting with ``#`` or ``%`` (and the rest of a line after one) are comments in every
text table; numbers may be separated by whitespace or commas. A DWI file given alone
(``--dwi X.nii.gz``) finds ``X.bval``, ``X.bvec`` and ``X.json`` next to it (dcm2niix
names them so), and a BIDS ``*_dwi.nii.gz`` also inherited ones, as the positional form
does.

Sidecar keys (``acquisition.json`` or a BIDS JSON; values in s, T/m, one value or one per
volume): ``delta`` / ``SmallDelta`` / ``DiffusionGradientDuration`` (δ), ``Delta`` /
``LargeDelta`` / ``DiffusionGradientSeparation`` (Δ), ``TE`` / ``EchoTime`` (TE), ``G`` /
``DiffusionGradientStrength`` (G). Other keys are ignored and listed in the log (``-v``).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..acquisition import Acquisition, b_value, check_bvals_unit
from ..units import bvals_to_si

log = logging.getLogger(__name__)

#: Sidecar keys accepted for each timing (first: microlearn's own name).
SIDECAR_KEYS = {
    "delta": ("delta", "SmallDelta", "DiffusionGradientDuration"),
    "Delta": ("Delta", "LargeDelta", "DiffusionGradientSeparation"),
    "TE": ("TE", "EchoTime"),
    "G": ("G", "DiffusionGradientStrength"),
}
#: Default b-value unit of each form.
DEFAULT_UNITS = {"fsl": "s/mm^2", "mrtrix": "s/mm^2", "bvector": "s/m^2"}
#: Comment markers of text tables (Camino and MATLAB write ``%``, most others ``#``).
COMMENTS = ("#", "%")
#: File name endings of a DWI image.
NIFTI_EXT = (".nii.gz", ".nii")


def _exists(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return path


def _numbers(path: Path, what: str, ndmin: int) -> np.ndarray:
    import io

    try:
        text = _exists(Path(path), what).read_text()
        if "," in text:  # comma-separated (MATLAB csvwrite, DIPY's tables): commas delimit
            text = text.replace(",", " ")
        return np.loadtxt(io.StringIO(text), ndmin=ndmin, comments=COMMENTS)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read numbers ({err}); it should hold only "
                         "whitespace-separated numbers.") from None


# ------------------------------------------------------------------ FSL
def read_fsl(bvals_path, bvecs_path):
    """FSL bvals and bvecs text files as written (no unit conversion).

    Returns
    -------
    bvals : ndarray, shape (n,)
        b-values in the file's unit (s/mm² for FSL/HCP/BIDS).
    bvecs : ndarray, shape (n, 3)
        Directions in image axes (3 rows or N×3 accepted).
    """
    bvals_path, bvecs_path = Path(bvals_path), Path(bvecs_path)
    bvals = _numbers(bvals_path, "bvals", 1).ravel()
    bvecs = _numbers(bvecs_path, "bvecs", 2)
    if bvecs.shape[0] == 3 and bvecs.shape[1] != 3:
        bvecs = bvecs.T
    elif bvecs.shape == (3, 3):
        bvecs = bvecs.T
    if bvecs.ndim != 2 or bvecs.shape[1] != 3:
        raise ValueError(f"{bvecs_path}: expected 3 rows (or N x 3), got shape {bvecs.shape}.")
    if bvals.size != bvecs.shape[0]:
        raise ValueError(f"{bvals_path} has {bvals.size} values but {bvecs_path} has "
                         f"{bvecs.shape[0]} directions; they must match.")
    return bvals, bvecs


# ------------------------------------------------------------------ Camino
def read_scheme(path, *, bvals_unit=None) -> dict:
    """A Camino scheme file (STEJSKALTANNER or BVECTOR).

    Parameters
    ----------
    path : str or Path
        ``VERSION: STEJSKALTANNER`` rows ``x y z |G| Δ δ TE`` (T/m, s) or
        ``VERSION: BVECTOR`` rows ``x y z b``. Without a VERSION line, 7 columns mean
        STEJSKALTANNER and 4 mean BVECTOR.
    bvals_unit : str, optional
        Unit of the BVECTOR b-values (default s/m², Camino's).

    Returns
    -------
    dict
        ``bvals`` (s/m²), ``bvecs`` (n, 3) and, for STEJSKALTANNER, ``G``, ``Delta``,
        ``delta``, ``TE``.
    """
    path = _exists(Path(path), "scheme")
    version = None
    rows = []
    for line in path.read_text().splitlines():
        line = re.split("[#%]", line, maxsplit=1)[0].strip()
        if not line:
            continue
        m = re.match(r"VERSION\s*:?\s*(\S+)", line, re.IGNORECASE)
        if m:
            version = m.group(1).upper()
            continue
        try:
            rows.append([float(v) for v in line.replace(",", " ").split()])
        except ValueError:
            raise ValueError(f"{path}: cannot read the line {line[:40]!r} as numbers; a "
                             "scheme file holds a VERSION line and rows of numbers.") from None
    if not rows:
        raise ValueError(f"{path}: no measurements found; a scheme file holds one row per "
                         "measurement.")
    widths = {len(r) for r in rows}
    ncol = {"STEJSKALTANNER": 7, "BVECTOR": 4, "1": 4, "0": 4}.get(version or "", None)
    if version is not None and ncol is None:
        raise ValueError(f"{path}: VERSION {version} is not supported; use STEJSKALTANNER "
                         "(x y z |G| Delta delta TE) or BVECTOR (x y z b).")
    if ncol is None:
        ncol = widths.pop() if len(widths) == 1 else -1
        if ncol not in (4, 7):
            raise ValueError(f"{path}: rows have {sorted({len(r) for r in rows})} columns; "
                             "a scheme file needs 7 (x y z |G| Delta delta TE) or 4 "
                             "(x y z b) columns, with a VERSION line to say which.")
    bad = [i for i, r in enumerate(rows) if len(r) != ncol]
    if bad:
        raise ValueError(f"{path}: row {bad[0] + 1} has {len(rows[bad[0]])} columns but "
                         f"this scheme form needs {ncol}; fix or remove that row.")
    a = np.asarray(rows, dtype=float)
    if ncol == 4:
        unit = bvals_unit or DEFAULT_UNITS["bvector"]
        check_bvals(a[:, 3], path)
        if bvals_unit is None and version is None and 0 < a[:, 3].max() <= 1e6:
            unit = "s/mm^2"  # no VERSION line: b up to 10⁶ cannot be s/m² (see BVAL_RANGES)
            log.info("%s: no VERSION line, b up to %g: read as s/mm²", path, a[:, 3].max())
        check_bvals_unit(a[:, 3], unit, source=str(path))
        return {"bvals": bvals_to_si(a[:, 3], unit), "bvecs": a[:, :3]}
    G, Delta, delta, TE = a[:, 3], a[:, 4], a[:, 5], a[:, 6]
    if np.max(G) > 10:
        raise ValueError(f"{path}: |G| up to {np.max(G):g} looks like mT/m; a "
                         "STEJSKALTANNER scheme gives |G| in T/m (divide by 1000).")
    if max(np.max(Delta), np.max(delta), np.max(TE)) > 2:
        raise ValueError(f"{path}: timings up to {max(Delta.max(), delta.max(), TE.max()):g}"
                         " look like ms; a STEJSKALTANNER scheme gives Delta, delta and TE "
                         "in seconds (divide by 1000).")
    b = np.where(G > 0, b_value(G, delta, Delta), 0.0)
    return {"bvals": b, "bvecs": a[:, :3], "G": G, "Delta": Delta, "delta": delta,
            "TE": TE if np.any(TE > 0) else None}


# ------------------------------------------------------------------ MRtrix
def read_mrtrix(path, *, affine=None, bvals_unit=None) -> dict:
    """An MRtrix gradient table (``-grad`` file or ``.b``): rows ``x y z b``.

    Parameters
    ----------
    path : str or Path
    affine : ndarray, shape (4, 4), optional
        Image affine; MRtrix directions are in scanner axes and become image axes (FSL
        convention: x flipped when the affine's determinant is positive), as
        ``mrconvert -export_grad_fsl`` does. Identity when absent.
    bvals_unit : str, optional
        Unit of b (default s/mm², MRtrix's).

    Returns
    -------
    dict
        ``bvals`` (s/m²) and ``bvecs`` (n, 3) in image axes.
    """
    path = Path(path)
    a = _numbers(path, "MRtrix gradient table", 2)
    if a.shape[1] != 4:
        raise ValueError(f"{path}: an MRtrix gradient table has 4 columns (x y z b), this "
                         f"one has {a.shape[1]}; export it with mrinfo -export_grad_mrtrix.")
    unit = bvals_unit or DEFAULT_UNITS["mrtrix"]
    check_bvals(a[:, 3], path)
    check_bvals_unit(a[:, 3], unit, source=str(path))
    return {"bvals": bvals_to_si(a[:, 3], unit),
            "bvecs": scanner_to_image(a[:, :3], np.eye(4) if affine is None else affine)}


def _rotation(affine) -> np.ndarray:
    m = np.asarray(affine, dtype=float)[:3, :3]
    u, _, vt = np.linalg.svd(m)
    return u @ vt


def scanner_to_image(vectors, affine) -> np.ndarray:
    """Directions (n, 3) from scanner axes (MRtrix) to FSL image axes."""
    rot = _rotation(affine)
    out = np.asarray(vectors, dtype=float) @ rot
    if np.linalg.det(rot) > 0:
        out[:, 0] *= -1
    return out


def image_to_scanner(vectors, affine) -> np.ndarray:
    """Inverse of :func:`scanner_to_image` (FSL image axes to MRtrix scanner axes)."""
    rot = _rotation(affine)
    v = np.array(vectors, dtype=float)
    if np.linalg.det(rot) > 0:
        v[:, 0] *= -1
    return v @ rot.T


# ------------------------------------------------------------------ sidecars
def read_sidecar(path) -> tuple[dict, list[str]]:
    """Timings from ``acquisition.json`` or a BIDS JSON sidecar.

    Returns
    -------
    timings : dict
        Any of ``delta``, ``Delta``, ``TE`` (s) and ``G`` (T/m): a float or a list with one
        value per volume.
    ignored : list of str
        Keys that are not timings (logged; BIDS sidecars hold many).
    """
    path = Path(path)
    try:
        d = json.loads(_exists(path, "sidecar").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); fix the file or leave it out."
                         ) from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object of timings (delta, Delta, TE, G "
                         "or BIDS keys).")
    timings, used = {}, set()
    for name, keys in SIDECAR_KEYS.items():
        found = [(k, d[k]) for k in keys if k in d and d[k] is not None]
        used.update(k for k, _ in found)
        if not found:
            continue
        values = [np.asarray(v, dtype=float) for _, v in found]
        for (k, v) in found[1:]:
            if np.shape(v) != values[0].shape or not np.allclose(v, values[0], rtol=1e-3):
                raise ValueError(f"{path}: {found[0][0]} and {k} disagree; keep one of them.")
        value = values[0]
        if name != "G" and np.nanmax(value) > 2:
            raise ValueError(f"{path}: {found[0][0]} = {np.nanmax(value):g} looks like ms; "
                             "sidecar times are in seconds (BIDS), divide by 1000.")
        timings[name] = float(value) if value.ndim == 0 else value.tolist()
    ignored = sorted(set(d) - used)
    if ignored:
        log.info("%s: ignored keys %s", path, ", ".join(ignored))
    return timings, ignored


# ------------------------------------------------------------------ BIDS
def _entities(name: str) -> dict:
    stem = name
    for ext in (*NIFTI_EXT, ".json", ".bval", ".bvec"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    parts = stem.split("_")
    return dict(p.split("-", 1) for p in parts[:-1] if "-" in p)


def _bids_root(path: Path, within=None) -> Path:
    if within is not None:  # never above the folder the caller serves (a dashboard's root)
        root = _bids_root(path)
        within = Path(within).resolve()
        return root if root.resolve() == within or within in root.resolve().parents else within
    for parent in [path, *path.parents]:
        if (parent / "dataset_description.json").is_file():
            return parent
    for parent in [path, *path.parents]:
        if not parent.name.startswith(("sub-", "ses-", "dwi")):
            return parent
    return path.parent


def _inherited(dwi: Path, ext: str, within=None) -> list[Path]:
    """Files with ``ext`` that apply to ``dwi`` by the BIDS inheritance principle, the
    nearest (most specific) last; none above ``within``."""
    ent = _entities(dwi.name)
    root = _bids_root(dwi.parent, within)
    found = []
    folder = dwi.parent
    while True:
        for f in sorted(folder.glob(f"*dwi{ext}")):
            if f.name.endswith(f"dwi{ext}") and set(_entities(f.name).items()) <= set(
                    ent.items()):
                found.append(f)
        if folder == root or folder.resolve() == root.resolve() or folder == folder.parent:
            break
        folder = folder.parent
    found.sort(key=lambda f: (len(f.relative_to(root).parts) if f.is_relative_to(root)
                              else 0, len(_entities(f.name))))
    return found


def bids_dwi_files(path) -> list[Path]:
    """The ``*_dwi.nii[.gz]`` files of a BIDS dataset, subject, session or dwi folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    pats = ("*_dwi.nii.gz", "*_dwi.nii")
    files = [f for p in pats for f in path.glob(p)]
    for sub in ("dwi", "*/dwi", "sub-*/dwi", "sub-*/ses-*/dwi"):
        for p in pats:
            files += path.glob(f"{sub}/{p}")
    return sorted(set(files))


def is_bids(path) -> bool:
    """True when ``path`` is a BIDS DWI file or a folder holding one in BIDS layout."""
    path = Path(path)
    if path.is_file():
        return path.name.endswith(tuple(f"_dwi{e}" for e in NIFTI_EXT))
    return path.is_dir() and bool(bids_dwi_files(path))


@dataclass
class InputFiles:
    """The files of one dataset, whatever its form.

    Attributes
    ----------
    form : str
        ``"hcp"``, ``"fsl"``, ``"bids"``, ``"camino"`` or ``"mrtrix"``.
    dwi, bvals, bvecs, scheme, grad, mask : Path or None
    sidecars : list of Path
        Timing sidecars, least specific first (later ones override).
    bids : dict
        For BIDS: ``root`` and the DWI file's ``entities``.
    """

    form: str
    dwi: Path | None = None
    bvals: Path | None = None
    bvecs: Path | None = None
    scheme: Path | None = None
    grad: Path | None = None
    mask: Path | None = None
    sidecars: list = field(default_factory=list)
    bids: dict = field(default_factory=dict)


def find_bids(path, *, within=None) -> InputFiles:
    """The files of a BIDS DWI run: a ``*_dwi.nii[.gz]`` file or a folder with one run
    (sidecars inherited from no folder above ``within``)."""
    path = Path(path)
    files = bids_dwi_files(path)
    if not files:
        raise ValueError(f"{path}: no *_dwi.nii.gz file in a BIDS layout (sub-*/[ses-*/]dwi/);"
                         " give the folder of one subject or the DWI file itself.")
    if len(files) > 1:
        names = ", ".join(str(f.relative_to(path)) for f in files[:4])
        more = ", ..." if len(files) > 4 else ""
        raise ValueError(f"{path}: holds {len(files)} DWI runs ({names}{more}); give the "
                         "*_dwi.nii.gz file of the run to use.")
    dwi = files[0]
    out = InputFiles(form="bids", dwi=dwi,
                     bids={"root": _bids_root(dwi.parent, within),
                           "entities": _entities(dwi.name)})
    for ext, attr in ((".bval", "bvals"), (".bvec", "bvecs")):
        found = _inherited(dwi, ext, within)
        if not found:
            stem = dwi.name[: -len(".nii.gz")] if dwi.name.endswith(".gz") else dwi.stem
            raise ValueError(f"{dwi.parent}: no {ext} file for {dwi.name}; BIDS needs "
                             f"{stem}{ext} next to the image (or an inherited one).")
        setattr(out, attr, found[-1])
    out.sidecars = _inherited(dwi, ".json", within)
    masks = sorted(dwi.parent.glob(dwi.name.split("_dwi")[0] + "*_mask.nii*"))
    out.mask = masks[0] if masks else None
    return out


def beside(dwi) -> InputFiles | None:
    """The files that go with a DWI file given alone: a BIDS run's (inherited) sidecars, or
    ``X.bval``/``X.bvec``/``X.json`` next to ``X.nii[.gz]`` (dcm2niix). None when there are
    none."""
    dwi = Path(dwi)
    if is_bids(dwi):
        try:
            return find_bids(dwi)
        except ValueError:
            pass  # not a complete BIDS run: try plain names
    name = dwi.name
    stem = next((name[: -len(e)] for e in NIFTI_EXT if name.endswith(e)), dwi.stem)
    found = {e: dwi.with_name(stem + e) for e in (".bval", ".bvec", ".json")}
    if not (found[".bval"].is_file() and found[".bvec"].is_file()):
        return None
    return InputFiles(form="fsl", dwi=dwi, bvals=found[".bval"], bvecs=found[".bvec"],
                      sidecars=[found[".json"]] if found[".json"].is_file() else [])


# ------------------------------------------------------------------ any form
def find_inputs(folder, *, within=None) -> InputFiles:
    """Recognise the layout of ``folder``: HCP/FSL files, a scheme file, an MRtrix table or
    BIDS (in this order); BIDS sidecars are inherited from no folder above ``within``."""
    folder = Path(folder)
    if folder.is_file():
        if is_bids(folder):
            return find_bids(folder, within=within)
        raise ValueError(f"{folder}: give a folder (HCP layout, BIDS) or --dwi with "
                         "--bvals/--bvecs, --scheme-file or --grad.")
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder not found: {folder}")
    dwi = next((folder / n for n in ("data.nii.gz", "data.nii") if (folder / n).exists()),
               folder / "data.nii.gz")
    mask = folder / "nodif_brain_mask.nii.gz"
    sidecar = [folder / "acquisition.json"] if (folder / "acquisition.json").is_file() else []
    common = {"dwi": dwi, "mask": mask if mask.exists() else None, "sidecars": sidecar}
    if (folder / "bvals").exists() or (folder / "bvecs").exists():
        return InputFiles(form="hcp", bvals=folder / "bvals", bvecs=folder / "bvecs", **common)
    schemes = sorted(folder.glob("*.scheme"))
    grads = sorted(folder.glob("*.b"))
    if dwi.exists() and (schemes or grads):
        if len(schemes) + len(grads) > 1:
            raise ValueError(f"{folder}: holds several gradient files "
                             f"({', '.join(p.name for p in schemes + grads)}); name one with "
                             "--scheme-file or --grad.")
        if schemes:
            return InputFiles(form="camino", scheme=schemes[0], **common)
        return InputFiles(form="mrtrix", grad=grads[0], **common)
    if is_bids(folder):
        return find_bids(folder, within=within)
    return InputFiles(form="hcp", bvals=folder / "bvals", bvecs=folder / "bvecs", **common)


def merged_sidecars(paths) -> tuple[dict, list[str]]:
    """Timings of several sidecars, later (more specific) ones overriding."""
    timings, ignored = {}, []
    for p in paths:
        t, ig = read_sidecar(p)
        timings.update(t)
        ignored += ig
    return timings, sorted(set(ignored))


def read_acquisition(files: InputFiles, *, bvals_unit=None, affine=None, n_volumes=None,
                     delta=None, Delta=None, TE=None, name=None,
                     b0_threshold=None) -> Acquisition:
    """The :class:`Acquisition` of a dataset's files, whatever their form.

    Parameters
    ----------
    files : InputFiles
        From :func:`find_inputs` / :func:`find_bids`, or built from explicit paths.
    bvals_unit : str, optional
        Unit of the file's b-values (default per form: s/mm² for FSL, BIDS and MRtrix,
        s/m² for Camino BVECTOR).
    affine : ndarray, shape (4, 4), optional
        Image affine (MRtrix directions are in scanner axes).
    n_volumes : int, optional
        Volumes of the DWI image; the gradient table must have as many rows.
    delta, Delta, TE : float, optional
        Timings (s) used when neither the scheme nor a sidecar gives them.
    b0_threshold : float, optional
        b-values (s/m²) at or below this are b0 (default 50 s/mm²; 5 s/mm² for IVIM
        protocols, see :meth:`Acquisition.from_bvals_bvecs`).

    Raises
    ------
    ValueError
        Naming the file: wrong column count, unit, counts, or a sidecar TE that disagrees
        with the scheme file's TE.
    """
    timings, _ = merged_sidecars(files.sidecars)
    if files.scheme is not None:
        src = files.scheme
        table = read_scheme(src, bvals_unit=bvals_unit)
    elif files.grad is not None:
        src = files.grad
        table = read_mrtrix(src, affine=affine, bvals_unit=bvals_unit)
    else:
        if files.bvals is None or files.bvecs is None:
            raise ValueError("give bvals and bvecs (or a scheme file / MRtrix table).")
        src = files.bvals
        raw, bvecs = read_fsl(files.bvals, files.bvecs)
        check_bvals(raw, files.bvals)
        unit = bvals_unit or DEFAULT_UNITS["fsl"]
        check_bvals_unit(raw, unit, source=str(files.bvals))
        table = {"bvals": bvals_to_si(raw, unit), "bvecs": bvecs}
    check_numbers(table, timings, src, files.sidecars,
                  files.bvecs if files.scheme is None and files.grad is None else None)
    n = table["bvals"].size
    if n_volumes is not None and n != n_volumes:
        raise ValueError(f"{src} has {n} measurements but the DWI image has {n_volumes} "
                         "volumes; use the gradient table written with this image.")
    for key in ("delta", "Delta", "TE", "G"):
        side = timings.get(key)
        if table.get(key) is not None and side is not None:
            if not np.allclose(np.broadcast_to(side, (n,)), table[key], rtol=1e-3, atol=1e-6):
                where = ", ".join(str(p) for p in files.sidecars)
                raise ValueError(f"{where}: {key} disagrees with the scheme file {src}; "
                                 f"remove {key} from the sidecar or correct one of them.")
    kw = {k: (table.get(k) if table.get(k) is not None else timings.get(k))
          for k in ("delta", "Delta", "TE", "G")}
    kw["delta"] = kw["delta"] if kw["delta"] is not None else delta
    kw["Delta"] = kw["Delta"] if kw["Delta"] is not None else Delta
    kw["TE"] = kw["TE"] if kw["TE"] is not None else TE
    try:
        acq = Acquisition.from_bvals_bvecs(table["bvals"], table["bvecs"],
                                           bvals_unit="s/m^2", check=False,
                                           name=name or Path(src).parent.name or "data",
                                           b0_threshold=b0_threshold, **kw)
    except ValueError as err:
        raise ValueError(f"{src}: {err}") from None
    te_source = ", ".join(str(p) for p in files.sidecars) if files.scheme is None else src
    acq.check_te_groups(source=str(te_source or src))
    return acq


def check_bvals(b, src, unit: str = "") -> None:
    """Refuse a negative or NaN/infinite b-value, naming the file and the volume."""
    b = np.asarray(b, float)
    bad = np.flatnonzero(~np.isfinite(b) | (b < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{src}: b-value {b[i]:g}{' ' + unit if unit else ''} of volume {i} "
                         f"is {'negative' if b[i] < 0 else 'not a number'} ({bad.size} such);"
                         " b-values are >= 0: fix the file.")


def check_numbers(table: dict, timings: dict, src, sidecars=(), vec_src=None) -> None:
    """Refuse numbers that make no sense, naming the file: a negative or NaN b-value, a NaN
    or zero-length direction on a diffusion-weighted volume, a NaN or negative gradient
    strength or timing (in the table or a sidecar)."""
    from ..acquisition import IVIM_B0_THRESHOLD

    b = np.asarray(table["bvals"], float)
    check_bvals(b / 1e6, src, "s/mm²")
    vecs = np.asarray(table["bvecs"], float)
    norms = np.linalg.norm(vecs, axis=1) if vecs.ndim == 2 else np.ones(b.size)
    bad = np.flatnonzero((b > IVIM_B0_THRESHOLD) & ~np.isfinite(norms))  # 0: not unit, later
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{vec_src or src}: the direction of weighted volume {i} (b = "
                         f"{b[i] / 1e6:g} s/mm²) is {vecs[i].tolist()} ({bad.size} such); "
                         "each weighted volume needs a unit direction: fix the bvecs.")
    side = ", ".join(str(p) for p in sidecars) or "sidecar"
    for key in ("G", "delta", "Delta", "TE"):
        # a scheme's b0 rows may hold 0; a sidecar's timing is one per volume or for all
        for value, where, strict in ((table.get(key), src, False),
                                     (timings.get(key), side, key != "G")):
            if value is None:
                continue
            v = np.asarray(value, float)
            if not np.all(np.isfinite(v)) or np.any(v <= 0 if strict else v < 0):
                raise ValueError(f"{where}: {key} holds a value that is NaN, infinite, "
                                 f"negative{' or zero' if strict else ''}; timings are in s "
                                 "(> 0) and G in T/m (>= 0): fix the file.")


def acquisition_from_folder(folder, *, bvals_unit=None, b0_threshold=None) -> Acquisition:
    """The acquisition of a dataset folder of any form (the image itself is not read, only
    its header when an MRtrix table needs the affine)."""
    files = find_inputs(folder)
    affine = n_volumes = None
    if files.dwi is not None and files.dwi.exists():
        import nibabel as nib

        try:
            img = nib.load(files.dwi)
            affine, n_volumes = img.affine, (img.shape[3] if len(img.shape) == 4 else None)
        except Exception as err:  # the header is optional here
            log.info("%s: header not read (%s)", files.dwi, err)
    return read_acquisition(files, bvals_unit=bvals_unit, affine=affine, n_volumes=n_volumes,
                            name=Path(folder).name, b0_threshold=b0_threshold)
