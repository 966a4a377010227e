"""Arguments shared by the subcommands that read a dataset."""

from __future__ import annotations

from pathlib import Path


def add_input_arguments(p) -> None:
    """INPUT folder (HCP layout) or explicit files."""
    p.add_argument("input", nargs="?", type=Path,
                   help="HCP-layout folder (data.nii.gz, bvals, bvecs, nodif_brain_mask.nii.gz)")
    p.add_argument("--dwi", type=Path, help="4-D DWI NIfTI (instead of INPUT)")
    p.add_argument("--bvals", type=Path, help="bvals file in s/mm²")
    p.add_argument("--bvecs", type=Path, help="bvecs file (3 rows)")
    p.add_argument("--mask", type=Path, help="brain mask NIfTI")
    p.add_argument("--acquisition", type=Path, help="acquisition.json with delta/Delta/TE/G")


def load_input(args):
    """The :class:`~microlearn.io.Dataset` named by the input arguments."""
    from ..io import load_dataset

    if args.input is None and args.dwi is None:
        raise ValueError("give an INPUT folder or --dwi/--bvals/--bvecs.")
    return load_dataset(args.input, dwi=args.dwi, bvals=args.bvals, bvecs=args.bvecs,
                        mask=args.mask, acquisition=args.acquisition)
