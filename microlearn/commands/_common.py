"""Arguments shared by the subcommands that read a dataset."""

from __future__ import annotations

from pathlib import Path


def add_input_arguments(p) -> None:
    """INPUT folder (HCP layout) or explicit files."""
    p.add_argument("input", nargs="?", type=Path,
                   help="dataset: HCP-layout folder (data.nii.gz, bvals, bvecs, "
                        "nodif_brain_mask.nii.gz), a folder with data.nii.gz and a *.scheme "
                        "or *.b file, or BIDS (sub-*/[ses-*/]dwi/ folder or *_dwi.nii.gz)")
    p.add_argument("--dwi", type=Path, help="4-D DWI NIfTI (instead of INPUT)")
    p.add_argument("--bvals", type=Path, help="bvals file (s/mm² unless --bvals-unit)")
    p.add_argument("--bvecs", type=Path, help="bvecs file (3 rows)")
    add_gradient_arguments(p)
    p.add_argument("--mask", type=Path, help="brain mask NIfTI")


def add_gradient_arguments(p) -> None:
    """Gradient-table forms, timings sidecar and the b-value unit."""
    p.add_argument("--scheme-file", type=Path, default=None,
                   help="Camino scheme file (STEJSKALTANNER or BVECTOR) instead of bvals/bvecs")
    p.add_argument("--grad", type=Path, default=None,
                   help="MRtrix gradient table (x y z b rows, as for mrtrix -grad)")
    p.add_argument("--acquisition", type=Path,
                   help="timings sidecar: acquisition.json (delta/Delta/TE/G) or a BIDS JSON "
                        "(EchoTime, ...); other keys are ignored")
    p.add_argument("--bvals-unit", default=None, choices=("s/mm2", "s/m2", "ms/um2"),
                   help="unit of the b-values in the file (default s/mm2 for FSL, BIDS and "
                        "MRtrix; s/m2 for Camino BVECTOR); b up to 1e6 s/mm2 is accepted")
    add_b0_threshold_argument(p)


def add_b0_threshold_argument(p) -> None:
    """``--b0-threshold`` in s/mm² (stored SI by :func:`b0_threshold`)."""
    p.add_argument("--b0-threshold", type=float, default=None, metavar="B",
                   help="b-values (s/mm²) at or below B count as b0: they normalise the "
                        "signal and give the noise σ (default 50; 5 when the data hold "
                        "several b-values below 200, an IVIM protocol)")


def b0_threshold(args):
    """``--b0-threshold`` in s/m² (None: the default rule)."""
    value = getattr(args, "b0_threshold", None)
    if value is None:
        return None
    if not value >= 0:
        raise ValueError(f"--b0-threshold must be a b-value >= 0 in s/mm², not {value}.")
    return float(value) * 1e6


def load_input(args):
    """The :class:`~microlearn.data.dataset.Dataset` named by the input arguments."""
    from ..data.dataset import load_dataset

    if args.input is None and args.dwi is None:
        raise ValueError("give an INPUT folder or --dwi/--bvals/--bvecs.")
    return load_dataset(args.input, dwi=args.dwi, bvals=args.bvals, bvecs=args.bvecs,
                        mask=args.mask, acquisition=args.acquisition,
                        bvals_unit=args.bvals_unit, scheme=args.scheme_file, grad=args.grad,
                        b0_threshold=b0_threshold(args))


def add_scale_arguments(p) -> None:
    """Whole-brain execution: slabs, resume, Dask."""
    g = p.add_argument_group("whole-brain execution")
    g.add_argument("--chunk-voxels", type=int, default=50_000,
                   help="brain voxels per slab (bounds memory; default 50000)")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its work folder (OUT.work)")
    g.add_argument("--work-dir", type=Path, default=None,
                   help="folder for finished slabs (default: OUT.work)")
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="send slabs to a running Dask scheduler")
    g.add_argument("--uncompressed", action="store_true",
                   help="write maps as .nii instead of .nii.gz (no gzip: faster to write, "
                        "about 3x larger)")
    g.add_argument("--workers", type=int, default=None,
                   help="start a local Dask cluster with N worker processes "
                        "(default: in-process, both cores)")


def scale_options(args) -> dict:
    """Keyword arguments of :func:`microlearn.run.chunked.run_chunked` from the CLI."""
    if args.chunk_voxels < 1:
        raise ValueError(f"--chunk-voxels must be positive, not {args.chunk_voxels}.")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, not {args.workers}.")
    return {"resume": args.resume, "work_dir": args.work_dir,
            "chunk_voxels": args.chunk_voxels, "scheduler": args.scheduler,
            "workers": args.workers, "compress": not getattr(args, "uncompressed", False)}


def add_output_arguments(p, what: str = "output folder") -> None:
    """``--out`` and ``--force`` (replace this command's own files that already exist)."""
    p.add_argument("--out", type=Path, required=True, help=what)
    p.add_argument("--force", action="store_true",
                   help="replace files of the same name already in --out (other files there "
                        "are never touched)")


def input_paths(args) -> list:
    """Every input file or folder named by the input arguments (for the --out check)."""
    return [getattr(args, k, None) for k in ("input", "dwi", "bvals", "bvecs", "mask",
                                             "acquisition", "sigma_map")]


def prepare_out(args, names, *, inputs=None):
    """Check ``args.out`` before any work (see :func:`microlearn.data.writers.prepare_output`)."""
    from ..data.writers import prepare_output

    return prepare_output(args.out, inputs=input_paths(args) if inputs is None else inputs,
                          names=names, force=getattr(args, "force", False))


def map_files(names, compress: bool = True) -> list[str]:
    """``<name>.nii.gz`` (or ``.nii``) for each map name."""
    return [f"{n}.nii.gz" if compress else f"{n}.nii" for n in names]


#: Number arguments that must be > 0, and those that must be >= 0 (by argparse ``dest``).
POSITIVE_ARGUMENTS = ("snr", "learning_rate", "epochs", "n_samples", "shape", "echo_times",
                      "n_voxels", "n_train", "prior_voxels", "chunk_voxels", "workers")
NON_NEGATIVE_ARGUMENTS = ("sigma", "seed")


def check_number_arguments(args) -> None:
    """Refuse any number argument that makes no sense (NaN, infinite, or out of its sign),
    naming the flag: one check for every command, before any work."""
    import math

    for dest, value in vars(args).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            flag = "--" + dest.replace("_", "-")
            if not math.isfinite(v):
                raise ValueError(f"{flag} {v}: give a finite number.")
            if dest in POSITIVE_ARGUMENTS and v <= 0:
                raise ValueError(f"{flag} {v}: must be greater than 0.")
            if dest in NON_NEGATIVE_ARGUMENTS and v < 0:
                raise ValueError(f"{flag} {v}: must not be negative.")
