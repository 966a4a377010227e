"""``microlearn phantom``: write a synthetic dataset in the HCP layout."""

from __future__ import annotations

from pathlib import Path

from ..cli import echo


def add_parser(sub) -> None:
    p = sub.add_parser("phantom", help="write a phantom with known truth (HCP layout)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--model", default="noddi", help="noddi | activeax | zcd | ivim")
    p.add_argument("--scheme", default=None, help="hcp | activeax | ivim (default by model)")
    p.add_argument("--shape", type=int, nargs=3, default=(24, 24, 8), metavar=("X", "Y", "Z"))
    p.add_argument("--snr", type=float, default=30.0, help="b0 SNR (Rician noise)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..io import check_writable
    from ..models import MODELS
    from ..phantom import make_phantom
    from ..schemes import SCHEMES

    if args.model not in MODELS:
        raise ValueError(f"--model {args.model!r} is unknown; choose one of {sorted(MODELS)}.")
    if args.scheme is not None and args.scheme not in SCHEMES:
        raise ValueError(f"--scheme {args.scheme!r} is unknown; choose one of {sorted(SCHEMES)}.")
    check_writable(args.out)
    ph = make_phantom(model=args.model, scheme=args.scheme, shape=tuple(args.shape),
                      snr=args.snr, seed=args.seed)
    out = ph.save(args.out)
    echo(f"phantom written to {out} ({int(ph.mask.sum())} brain voxels, "
          f"{ph.acq.n_measurements} volumes, truth in {out / 'truth'})")
    return 0
