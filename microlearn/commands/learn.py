"""``microlearn learn``: train an estimator on signals simulated from a model."""

from __future__ import annotations

from pathlib import Path

from ..cli import echo
from ._common import add_b0_threshold_argument, add_output_arguments, b0_threshold, prepare_out
from ._model import add_model_arguments, model_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("learn", help="train a learned estimator on simulated signals")
    add_model_arguments(p)
    p.add_argument("--n-fibres", default=None,
                   help="fibre populations of the training voxels: one count or a "
                        "comma-separated list mixed equally (default: 1,2,3 and, for "
                        "NODDI, 10%% free water 0; IVIM 0)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--scheme", help="built-in acquisition: hcp | activeax | ivim")
    src.add_argument("--acquisition", type=Path, metavar="INPUT",
                     help="dataset folder (HCP, BIDS, scheme file) whose acquisition to train "
                          "for")
    p.add_argument("--bvals-unit", default=None, choices=("s/mm2", "s/m2", "ms/um2"),
                   help="unit of the b-values in the folder's files (default s/mm2)")
    add_b0_threshold_argument(p)
    p.add_argument("--estimator", default="dnn",
                   help="polynomial | boosted-trees | bayesian | linear-sdca | dnn | "
                        "wide-deep | bayesian-dnn | deep-ensemble")
    p.add_argument("--optimizer", default=None,
                   help="adam | ftrl | proximal-adagrad | sdca (networks, linear-sdca)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="step size of --optimizer (wide-deep: its wide part) or of the "
                        "network / boosted trees (default: Adam 1e-3, Ftrl and "
                        "ProximalAdagrad 0.05, boosted trees 0.1)")
    p.add_argument("--uncertainty", action="store_true",
                   help="also learn a calibrated per-voxel std: predict writes <map>_std. "
                        "With --estimator dnn this trains a deep ensemble (5 heteroscedastic "
                        "networks: the std that ranks errors best, measured); other "
                        "estimators get a calibrated residual head; always on for bayesian, "
                        "bayesian-dnn and deep-ensemble")
    p.add_argument("--features", default="rotation-invariant",
                   help="rotation-invariant | signal | hybrid")
    p.add_argument("--prior", default="auto", choices=("auto", "data", "model"),
                   help="training parameters: 'data' fits a random sample of the "
                        "--acquisition folder's voxels (MIX, fibre count per voxel) and "
                        "trains around those fits (empirical Bayes); 'model' uses the "
                        "model's priors; 'auto' (default): data when the folder has a "
                        "dataset and the model has fibres, else model")
    p.add_argument("--prior-voxels", type=int, default=2000,
                   help="voxels fitted for --prior data (default 2000)")
    p.add_argument("--n-samples", type=int, default=100_000, help="simulated training voxels")
    p.add_argument("--snr", type=float, default=30.0, help="Rician SNR of the training signals")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (networks)")
    p.add_argument("--seed", type=int, default=0)
    add_output_arguments(p, "output folder of the estimator")
    p.set_defaults(run=run)


def _acquisition(args):
    from ..acquisition import Acquisition
    from ..data.readers import acquisition_from_folder

    if args.scheme:
        return Acquisition.scheme(args.scheme)
    folder = Path(args.acquisition)
    if not folder.exists():
        raise FileNotFoundError(f"--acquisition {folder}: not found; give a dataset folder "
                                "(HCP layout, BIDS, or with a scheme file).")
    acq = acquisition_from_folder(folder, bvals_unit=args.bvals_unit,
                                  b0_threshold=b0_threshold(args))
    from ..cli import warn
    from ..data.qc import timing_warnings

    for line in timing_warnings(acq)[0]:
        warn(line)
    return acq


def _prior_signals(args, model):
    """Raw voxels of the --acquisition folder for the empirical prior, or None."""
    if args.prior_voxels < 20:
        raise ValueError(f"--prior-voxels {args.prior_voxels}: give 20 or more.")
    from ..learning.empirical import data_prior_helps

    if args.prior == "model" or (args.prior == "auto" and not data_prior_helps(model)):
        return None
    if args.scheme or not any(Path(args.acquisition).glob("*.nii*")):
        if args.prior == "data":
            raise ValueError("--prior data needs --acquisition DIR with a dataset "
                             "(data.nii.gz); use --prior model with --scheme.")
        return None
    from ..data.dataset import load_dataset
    from ..run.chunked import sample_voxels

    ds = load_dataset(args.acquisition, bvals_unit=args.bvals_unit,
                      b0_threshold=b0_threshold(args))
    return sample_voxels(ds, max_voxels=20 * args.prior_voxels)


def _fibres(text):
    if text is None:
        return None
    try:
        counts = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--n-fibres {text!r}: give a count 0-3 or a list like 1,2,3.") from None
    return counts


def run(args) -> int:
    from ..learning import make_estimator, train
    from ..learning.persistence import ESTIMATOR_FILES
    from ..learning.trained import with_uncertainty

    options = {} if args.epochs is None else {"epochs": args.epochs}
    if args.uncertainty:  # dnn -> deep ensemble; others: a calibrated residual head
        args.estimator, options = with_uncertainty(args.estimator, options)
    # bad names and options fail here, before any output folder is made
    make_estimator(args.estimator, args.optimizer, learning_rate=args.learning_rate,
                   **options)
    model = model_from_args(args)
    prepare_out(args, ESTIMATOR_FILES, inputs=[args.acquisition])
    acq = _acquisition(args)
    prior = _prior_signals(args, model)
    if prior is not None:
        options["prior_signals"] = prior
        options["prior_fit"] = {"n_fit": args.prior_voxels}
    est = train(model, acq, estimator=args.estimator, optimizer=args.optimizer,
                learning_rate=args.learning_rate, features=args.features,
                n_samples=args.n_samples, snr=args.snr,
                n_fibres=_fibres(args.n_fibres), random_state=args.seed, progress=True,
                **options)
    est.save(args.out, force=args.force)
    echo(f"trained {est.describe()} in {est.info['seconds']:.1f} s; saved to {args.out}")
    return 0
