"""BIDS-derivatives layout for the outputs of a BIDS input.

A fit of ``sub-01/ses-1/dwi/sub-01_ses-1_dwi.nii.gz`` with ``--out DERIV`` writes::

    DERIV/dataset_description.json                (DatasetType "derivative"; kept if present)
    DERIV/sub-01/ses-1/dwi/sub-01_ses-1_model-noddi_param-odi_dwimap.nii.gz   (one per map)
    DERIV/sub-01/ses-1/dwi/sub-01_ses-1_model-noddi_dwimap.json  (settings: fit.json's record)

Entities of the input (``sub``, ``ses``, ``acq``, ``dir``, ``run``, ...) are kept in order;
map names become alphanumeric BIDS labels (``odi_std`` -> ``odiStd``), the naming of the
diffusion-derivatives proposal (BEP016).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

#: Entity order of BIDS file names.
ENTITY_ORDER = ("sub", "ses", "acq", "ce", "rec", "dir", "run", "echo", "part")


def derivative_dir(out, source: dict) -> Path:
    """``out/sub-X[/ses-Y]/dwi`` for a dataset's ``source`` record (BIDS entities)."""
    ent = source["bids"]["entities"]
    folder = Path(out) / f"sub-{ent['sub']}"
    if "ses" in ent:
        folder = folder / f"ses-{ent['ses']}"
    return folder / "dwi"


def prefix(source: dict) -> str:
    """``sub-X_ses-Y_..._`` entities of the input, in BIDS order."""
    ent = source["bids"]["entities"]
    keys = [k for k in ENTITY_ORDER if k in ent] + sorted(set(ent) - set(ENTITY_ORDER))
    return "_".join(f"{k}-{ent[k]}" for k in keys)


def label(name: str) -> str:
    """A map name as an alphanumeric BIDS label (``residual_rms`` -> ``residualRms``)."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def output_files(source: dict, model: str, maps, settings: bool = True) -> list[str]:
    """The names :func:`rename_outputs` gives ``<map>.nii.gz`` of ``maps`` (and the
    settings file): the real destinations, checked against ``--force`` before any work."""
    pre = f"{prefix(source)}_model-{label(model)}"
    return ([f"{pre}_param-{label(m)}_dwimap.nii.gz" for m in maps]
            + ([f"{pre}_dwimap.json"] if settings else []))


def rename_outputs(staging, source: dict, model: str, settings: str = "fit.json") -> list[str]:
    """Rename ``<map>.nii.gz`` and the settings file in ``staging`` to BIDS-derivative names.

    Returns
    -------
    list of str
        The new file names.
    """
    staging = Path(staging)
    pre = f"{prefix(source)}_model-{label(model)}"
    names = []
    for p in sorted([*staging.glob("*.nii.gz"), *staging.glob("*.nii")]):
        ext = ".nii.gz" if p.name.endswith(".nii.gz") else ".nii"
        new = f"{pre}_param-{label(p.name[: -len(ext)])}_dwimap{ext}"
        os.replace(p, staging / new)
        names.append(new)
    if (staging / settings).exists():
        os.replace(staging / settings, staging / f"{pre}_dwimap.json")
        names.append(f"{pre}_dwimap.json")
    return names


def write_dataset_description(out) -> Path:
    """``out/dataset_description.json`` of a microlearn derivative, unless one exists."""
    from .. import __version__

    out = Path(out)
    path = out / "dataset_description.json"
    if os.path.lexists(path):  # a dangling link named so is the user's too
        return path
    out.mkdir(parents=True, exist_ok=True)
    desc = {"Name": "microlearn microstructure maps", "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "microlearn", "Version": __version__}]}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=out)
    with os.fdopen(fd, "w") as fh:
        json.dump(desc, fh, indent=2)
    from .writers import honour_umask

    honour_umask(tmp)
    os.replace(tmp, path)
    return path
