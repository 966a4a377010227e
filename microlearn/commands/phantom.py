"""``microlearn phantom``: write a synthetic dataset in the HCP layout."""

from __future__ import annotations

import numpy as np

from ..cli import echo
from ._common import add_output_arguments, prepare_out

#: Files and folders a phantom writes (the --out check).
PHANTOM_FILES = ("data.nii.gz", "data.nii", "bvals", "bvecs", "nodif_brain_mask.nii.gz",
                 "acquisition.json", "truth")


def add_parser(sub) -> None:
    p = sub.add_parser("phantom", help="write a phantom with known truth (HCP layout)")
    add_output_arguments(p, "output folder")
    p.add_argument("--model", default="noddi", help="noddi | activeax | zcd | ivim")
    p.add_argument("--scheme", default=None, help="hcp | activeax | ivim (default by model)")
    p.add_argument("--kind", default="brain", choices=("brain", "rings"),
                   help="brain: tissue classes from real anatomy, fibres along known tracts "
                        "(default); rings: the small ellipsoid test fixture")
    p.add_argument("--shape", type=int, nargs=3, default=(48, 58, 12), metavar=("X", "Y", "Z"),
                   help="grid; the brain spans HCP's field of view (145 174 145 = HCP's "
                        "1.25 mm grid)")
    p.add_argument("--snr", type=float, default=30.0, help="b0 SNR (Rician noise)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slab-wise", action="store_true",
                   help="generate and write z-slab by z-slab into an uncompressed data.nii "
                        "(bounded memory; automatic above 2e8 signal values, e.g. HCP size)")
    p.set_defaults(run=run)


#: Signal values above which the phantom is written slab by slab.
SLAB_WISE_ABOVE = 2e8


def run(args) -> int:
    from ..io import load_maps
    from ..models import MODELS
    from ..phantom import make_phantom
    from ..schemes import SCHEMES

    if args.model not in MODELS:
        raise ValueError(f"--model {args.model!r} is unknown; choose one of {sorted(MODELS)}.")
    if args.scheme is not None and args.scheme not in SCHEMES:
        raise ValueError(f"--scheme {args.scheme!r} is unknown; choose one of {sorted(SCHEMES)}.")
    prepare_out(args, PHANTOM_FILES, inputs=[])
    from ..acquisition import Acquisition
    from ..phantom import DEFAULT_SCHEME, save_phantom_slabwise

    n_meas = Acquisition.scheme(args.scheme or DEFAULT_SCHEME[args.model]).n_measurements
    size = float(np.prod(args.shape)) * n_meas
    if args.slab_wise or size > SLAB_WISE_ABOVE:
        out = save_phantom_slabwise(args.out, model=args.model, scheme=args.scheme,
                                    shape=tuple(args.shape), snr=args.snr, seed=args.seed,
                                    progress=True, kind=args.kind,
                                    force=args.force)
        n_brain = int((load_maps(out / "truth", names=("labels",))["labels"] > 0).sum())
    else:
        ph = make_phantom(model=args.model, scheme=args.scheme, shape=tuple(args.shape),
                          snr=args.snr, seed=args.seed, kind=args.kind)
        out = ph.save(args.out, force=args.force)
        n_brain = int(ph.mask.sum())
    echo(f"phantom written to {out} ({n_brain} brain voxels, {n_meas} volumes, truth in "
         f"{out / 'truth'})")
    return 0
