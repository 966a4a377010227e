"""``microlearn learn``: train an estimator on signals simulated from a model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import echo
from ._common import add_b0_threshold_argument, add_output_arguments, b0_threshold, prepare_out
from ._model import add_model_arguments, model_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("learn", help="train a learned estimator on simulated signals")
    add_model_arguments(p)
    p.add_argument("--n-fibres", default=None,
                   help="fibre populations of the training voxels: one count, a "
                        "comma-separated list mixed equally, or auto. Default: the model's "
                        "own count (NODDI 1, as `fit`), so the learned maps are the ones "
                        "`fit` reports; auto: 0-3 fibres per voxel (fitted proportions with "
                        "the data prior, else 1,2,3 and 10%% free water), fibre-weighted "
                        "maps as `fit --n-fibres auto`")
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
    p.add_argument("--uncertainty", action=argparse.BooleanOptionalAction, default=None,
                   help="also learn a calibrated per-voxel std: predict writes <map>_std "
                        "and checks its maps against a fit within that std. With --estimator "
                        "dnn this trains a deep ensemble (5 heteroscedastic networks: the "
                        "std that ranks errors best, measured; as fast to train as the DNN); "
                        "other estimators get a calibrated residual head; always on for "
                        "bayesian, bayesian-dnn and deep-ensemble. Default: on for dnn, off "
                        "for the others")
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
    p.add_argument("--snr", type=float, default=None,
                   help="Rician SNR of the training signals (default: the data's own noise "
                        "with --acquisition DIR holding a dataset: σ from its b0 repeats or "
                        "fit residuals, each training voxel at a data voxel's SNR and per-TE "
                        "b0 scaling; else 30)")
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


#: Fewer usable voxels than this and ``--prior auto`` trains on the model's priors (with
#: the data's noise); ``--prior data`` refuses.
MIN_PRIOR_VOXELS = 50


def _data_signals(args, model):
    """``(voxels, use_for_prior)``: raw voxels of the --acquisition folder (None without a
    dataset) and whether they build the empirical prior (else they give only the noise)."""
    if args.prior_voxels < 20:
        raise ValueError(f"--prior-voxels {args.prior_voxels}: give 20 or more.")
    from ..learning.empirical import data_prior_helps

    if args.scheme or not any(Path(args.acquisition).glob("*.nii*")):
        if args.prior == "data":
            raise ValueError("--prior data needs --acquisition DIR with a dataset "
                             "(data.nii.gz); use --prior model with --scheme.")
        return None, False
    from ..data.dataset import load_dataset
    from ..run.chunked import sample_voxels

    ds = load_dataset(args.acquisition, bvals_unit=args.bvals_unit,
                      b0_threshold=b0_threshold(args))
    vox = sample_voxels(ds, max_voxels=20 * args.prior_voxels)
    if args.prior == "model" or (args.prior == "auto" and not data_prior_helps(model)):
        return vox, False
    if len(vox) < MIN_PRIOR_VOXELS:
        if args.prior == "data":
            raise ValueError(f"--prior data: {args.acquisition} has {len(vox)} usable voxels, "
                             f"too few to fit a data prior (need {MIN_PRIOR_VOXELS}); use "
                             "--prior model (the model's priors, trained at the data's noise).")
        echo(f"{len(vox)} usable voxels are too few for a data prior: training on the "
             "model's priors at the data's noise (as --prior model)")
        return vox, False
    return vox, True


def _fibres(text, model):
    if text is None:  # the model's own count: learn what `fit` reports by default
        from ..models.registry import has_fibres

        return (model.n_fibres or 1) if has_fibres(model) else None
    if str(text).strip() == "auto":
        return "auto"
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
    if args.uncertainty is None:
        args.uncertainty = args.estimator == "dnn"
    if args.uncertainty:  # dnn -> deep ensemble; others: a calibrated residual head
        args.estimator, options = with_uncertainty(args.estimator, options)
    # bad names and options fail here, before any output folder is made
    make_estimator(args.estimator, args.optimizer, learning_rate=args.learning_rate,
                   **options)
    model = model_from_args(args)
    prepare_out(args, ESTIMATOR_FILES, inputs=[args.acquisition])
    acq = _acquisition(args)
    voxels, use_for_prior = _data_signals(args, model)
    if use_for_prior:
        options["prior_signals"] = voxels
        options["prior_fit"] = {"n_fit": args.prior_voxels}
    elif voxels is not None:
        options["noise_signals"] = voxels
    est = train(model, acq, estimator=args.estimator, optimizer=args.optimizer,
                learning_rate=args.learning_rate, features=args.features,
                n_samples=args.n_samples, snr=args.snr,
                n_fibres=_fibres(args.n_fibres, model), random_state=args.seed, progress=True,
                **options)
    est.save(args.out, force=args.force)
    echo(f"trained {est.describe()} in {est.info['seconds']:.1f} s; saved to {args.out}")
    return 0
