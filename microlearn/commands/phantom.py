"""``microlearn phantom``: write a synthetic dataset in the HCP layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cli import echo
from ._common import add_output_arguments, prepare_out
from ._model import add_model_arguments, model_from_args

#: Files and folders a phantom writes (the --out check).
PHANTOM_FILES = ("data.nii.gz", "data.nii", "bvals", "bvecs", "nodif_brain_mask.nii.gz",
                 "acquisition.json", "truth")


def add_parser(sub) -> None:
    p = sub.add_parser("phantom", help="write a phantom with known truth (HCP layout)")
    add_output_arguments(p, "output folder")
    add_model_arguments(p)
    p.add_argument("--scheme", default=None, help="hcp | activeax | ivim (default by model)")
    p.add_argument("--kind", default="brain", choices=("brain", "rings"),
                   help="brain: tissue classes from real anatomy, fibres along known tracts "
                        "(default); rings: the small ellipsoid test fixture")
    p.add_argument("--shape", type=int, nargs=3, default=(48, 58, 12), metavar=("X", "Y", "Z"),
                   help="grid; the brain spans HCP's field of view (145 174 145 = HCP's "
                        "1.25 mm grid)")
    p.add_argument("--snr", type=float, default=30.0, help="b0 SNR (Rician noise)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--acquisition", type=Path, default=None, metavar="INPUT",
                   help="simulate the acquisition of this dataset folder (HCP, BIDS, scheme "
                        "file) instead of --scheme")
    p.add_argument("--bvals-unit", default=None, choices=("s/mm2", "s/m2", "ms/um2"),
                   help="unit of the b-values in --acquisition's files (default s/mm2)")
    p.add_argument("--echo-times", type=float, nargs="+", default=None, metavar="MS",
                   help="repeat the scheme at these echo times (ms) for multi-TE data")
    p.add_argument("--t2", default=None,
                   help="T2 weighting: 'tissue' (typical per-tissue T2) or one T2 in ms "
                        "(default: 'tissue' with --echo-times, else none)")
    p.add_argument("--slab-wise", action="store_true",
                   help="generate and write z-slab by z-slab into an uncompressed data.nii "
                        "(bounded memory; automatic above 2e8 signal values, e.g. HCP size)")
    p.set_defaults(run=run)


#: Signal values above which the phantom is written slab by slab.
SLAB_WISE_ABOVE = 2e8


def run(args) -> int:
    from ..data.dataset import load_maps
    from ..data.phantom import make_phantom
    from ..models.spec import model_reference
    from ..schemes import SCHEMES

    model = model_reference(model_from_args(args))
    if args.scheme is not None and args.scheme not in SCHEMES:
        raise ValueError(f"--scheme {args.scheme!r} is unknown; choose one of {sorted(SCHEMES)}.")
    prepare_out(args, PHANTOM_FILES, inputs=[args.acquisition])
    from ..acquisition import Acquisition
    from ..data.phantom import save_phantom_slabwise

    acq, t2 = _acquisition_and_t2(args, Acquisition, model)
    n_meas = acq.n_measurements
    size = float(np.prod(args.shape)) * n_meas
    if args.slab_wise or size > SLAB_WISE_ABOVE:
        out = save_phantom_slabwise(args.out, model=model, shape=tuple(args.shape),
                                    snr=args.snr, seed=args.seed, progress=True, acq=acq,
                                    t2=t2, kind=args.kind, force=args.force)
        n_brain = int((load_maps(out / "truth", names=("labels",))["labels"] > 0).sum())
    else:
        ph = make_phantom(model=model, shape=tuple(args.shape), snr=args.snr,
                          seed=args.seed, acq=acq, t2=t2, kind=args.kind)
        out = ph.save(args.out, force=args.force)
        n_brain = int(ph.mask.sum())
    echo(f"phantom written to {out} ({n_brain} brain voxels, {n_meas} volumes, truth in "
         f"{out / 'truth'})")
    return 0


def _acquisition_and_t2(args, Acquisition, model):
    """The acquisition to simulate (scheme or dataset folder, optionally at several echo
    times) and the T2 option of :func:`microlearn.data.phantom.make_phantom`."""
    from ..data.readers import acquisition_from_folder
    from ..schemes import with_echo_times

    if args.acquisition is not None:
        if args.scheme is not None:
            raise ValueError("give --scheme or --acquisition, not both.")
        acq = acquisition_from_folder(args.acquisition, bvals_unit=args.bvals_unit)
    else:
        from ..models.registry import default_scheme
        from ..models.spec import resolve_model

        acq = Acquisition.scheme(args.scheme or default_scheme(resolve_model(model)))
    if args.echo_times:
        acq = with_echo_times(acq, [te * 1e-3 for te in args.echo_times])
    t2 = args.t2 if args.t2 is not None else ("tissue" if acq.n_te > 1 else None)
    if t2 not in (None, "tissue"):
        try:
            t2 = float(t2) * 1e-3
        except ValueError:
            raise ValueError(f"--t2 {args.t2!r}: give 'tissue' or a T2 in ms.") from None
        if not t2 > 0:
            raise ValueError(f"--t2 {args.t2!r}: T2 must be positive (ms).")
    return acq, t2
