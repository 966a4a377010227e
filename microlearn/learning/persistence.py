"""Save and load trained estimators in formats that never run code when loaded.

An estimator is a folder:

* ``estimator.json`` — model, fibre mixture, acquisition (SI), features, targets,
  estimator name and parameters, optimizer, training info, versions;
* scikit-learn estimators: ``estimator.skops`` (skops). On load every object, type and
  function named in the file must be one of the types microlearn's estimators write
  (:data:`WRITTEN_TYPES`, an explicit list); anything else — a function, a
  ``FunctionTransformer``, any other numpy/scipy/scikit-learn type — is refused before
  skops builds a single object;
* Keras networks: ``network.keras`` loaded with ``safe_mode=True`` (no lambda layers, no
  arbitrary code; only registered microlearn layers) plus ``scaling.npz`` with the
  feature/target standardisation (and σ calibration), and for networks trained with
  ``uncertainty=True`` their σ head in ``std_head.skops`` (same allow-list); and
  ``network.npz``, the same network as a plain graph of weights (``numpy_graph`` in
  ``estimator.json``): loading uses it and predicts in NumPy without importing TensorFlow
  (3-7 s per process); ``network.keras`` is read only for a folder without it.

The files are written to a staging folder and moved in together, so a crash never
leaves half an estimator; other files in the folder are never touched, and an existing
estimator is replaced only with ``force``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: Format written by :func:`save_estimator`.
FORMAT_VERSION = 1
#: Every type an ``estimator.skops`` written by microlearn contains (``module.Class``):
#: the estimators of :mod:`microlearn.learning.estimators`, the scikit-learn objects they
#: hold, and skops' containers. A file naming anything else is refused.
_SKLEARN_WRITTEN = (
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.linear_model._bayes.BayesianRidge",
    "sklearn.preprocessing._polynomial.PolynomialFeatures",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.loss.HalfSquaredError", "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.loss.PinballLoss", "sklearn._loss._loss.CyPinballLoss",
    "sklearn._loss.link.IdentityLink", "sklearn._loss.link.Interval",
)
_CONTAINERS = (
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int",
    "builtins.float", "builtins.bool", "builtins.NoneType", "numpy.ndarray",
    "numpy.random._generator.Generator", "numpy.random._pcg64.PCG64",
) + tuple(f"numpy.{t}" for t in ("float64", "float32", "int64", "int32", "uint64", "uint32",
                                   "uint8", "int8", "bool_"))
#: Loaders of references to code (functions, methods, types): only builtin scalar types.
_CODE_LOADERS = ("FunctionNode", "MethodNode", "TypeNode", "PartialNode", "OperatorFuncNode")
_SAFE_TYPE_REFS = ("builtins.str", "builtins.int", "builtins.float", "builtins.bool")


def written_types() -> frozenset[str]:
    """The explicit allow-list: every ``module.Class`` microlearn writes to a skops file."""
    from . import estimators

    ours = tuple(f"{cls.__module__}.{cls.__name__}" for cls in estimators.ESTIMATORS.values())
    return frozenset(ours + _SKLEARN_WRITTEN + _CONTAINERS)


#: Highest SH order a saved estimator's features may ask for (a crafted order would make
#: the features' basis as large as the file says).
MAX_LMAX = 16
_SCALING = ("x_mean_", "x_scale_", "y_mean_", "y_scale_")
_OPTIONAL = ("std_scale_",)  # GaussianDNNRegressor's interval calibration
#: Files an estimator folder may hold (all written together).
ESTIMATOR_FILES = ("estimator.json", "estimator.skops", "network.keras", "scaling.npz",
                   "std_head.skops", "network.npz")


def _versions() -> dict:
    import sklearn

    from .. import __version__

    return {"microlearn": __version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def save_estimator(trained, path, *, force: bool = False) -> Path:
    """Write ``trained`` (a :class:`TrainedEstimator`) to the folder ``path``.

    Parameters
    ----------
    trained : TrainedEstimator
    path : str or Path
        Estimator folder; created, or an existing folder whose other files are kept.
    force : bool
        Replace an estimator already saved in ``path`` (otherwise ``ValueError``).
    """
    from ..data.writers import check_existing, staged_output
    from .networks import KerasRegressor

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a folder; choose another output path.")
    check_existing(path, ESTIMATOR_FILES, force=force)
    est = trained.estimator
    meta = {
        "format": "microlearn-estimator", "format_version": FORMAT_VERSION,
        "model": trained.model, "n_fibres": trained.n_fibres,
        "acquisition": trained.acq.to_dict(), "acquisition_fingerprint": trained.acq.fingerprint(),
        "features": trained.features.to_dict(), "targets": list(trained.target_names),
        "estimator": trained.estimator_name, "optimizer": trained.optimizer,
        "estimator_class": type(est).__name__,
        "estimator_params": {k: _jsonable(v) for k, v in est.get_params().items()},
        "info": trained.info, "versions": _versions(),
    }
    with staged_output(path, force=force) as tmp:
        if isinstance(est, KerasRegressor):
            est.model_.save(tmp / "network.keras")
            np.savez(tmp / "scaling.npz", **{k: getattr(est, k) for k in _SCALING + _OPTIONAL
                                             if hasattr(est, k)})
            meta["keras"] = {"n_features_in": int(est.n_features_in_),
                             "n_outputs": int(est.n_outputs_),
                             "single_target": bool(est.single_target_)}
            graph = _numpy_graph(est)
            if graph is not None:  # loads and predicts without importing TensorFlow
                meta["numpy_graph"] = graph[0]
                np.savez(tmp / "network.npz", **graph[1])
            if hasattr(est, "std_heads_"):  # a network's σ head (scikit-learn trees)
                import skops.io

                skops.io.dump(list(est.std_heads_), tmp / "std_head.skops")
        else:
            import skops.io

            skops.io.dump(est, tmp / "estimator.skops")
        (tmp / "estimator.json").write_text(json.dumps(meta, indent=1))
    return path


def _schema_types(file: Path) -> set[tuple[str, str]]:
    """(``module.Class``, skops loader) of every node in a skops file's schema."""
    import zipfile

    with zipfile.ZipFile(file) as z:
        schema = json.loads(z.read("schema.json"))
    found, stack = set(), [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node or "__loader__" in node:
                found.add((f"{node.get('__module__')}.{node.get('__class__')}",
                           str(node.get("__loader__"))))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _trusted_types(file: Path) -> list[str]:
    """The untrusted types skops reports, once all of the file is checked against the list.

    Raises ``ValueError`` when the file names a type, function or method microlearn never
    writes (:func:`written_types`), or when skops reports one (both lists must agree).
    """
    import zipfile

    import skops.io

    allowed = written_types()
    try:
        nodes = _schema_types(file)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{file}: not a readable skops file ({err}); train the estimator "
                         "again.") from None
    refused = {t for t, loader in nodes
               if t not in allowed or (loader in _CODE_LOADERS and t not in _SAFE_TYPE_REFS)}
    untrusted = skops.io.get_untrusted_types(file=file)
    refused |= {t for t in untrusted if t not in allowed}
    if refused:
        raise ValueError(f"{file}: refusing to load types microlearn never writes: "
                         f"{sorted(refused)}; this file was not written by microlearn.")
    return untrusted


def load_estimator(path):
    """Load a folder written by :func:`save_estimator` into a :class:`TrainedEstimator`."""
    from ..acquisition import Acquisition
    from .features import FeatureSpec
    from .trained import TrainedEstimator

    path = Path(path)
    meta_file = path / "estimator.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path}: no estimator.json; give a folder written by "
                                "`microlearn learn` (or TrainedEstimator.save).")
    try:
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != "microlearn-estimator":
            raise ValueError("not a microlearn estimator")
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"format version {meta['format_version']} is newer than this "
                             "microlearn; upgrade microlearn")
        acq = Acquisition.from_dict(meta["acquisition"])
        features = FeatureSpec.from_dict(meta["features"])
        _check_meta(meta, meta_file)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
        raise ValueError(f"{meta_file}: corrupt or unsupported estimator file ({err}); "
                         "train it again with `microlearn learn`.") from None
    if acq.fingerprint() != meta.get("acquisition_fingerprint"):
        raise ValueError(f"{meta_file}: the acquisition does not match its fingerprint (the "
                         "file was modified); train the estimator again.")
    if "keras" in meta:
        est = _load_network(path, meta)
    else:
        import skops.io

        file = path / "estimator.skops"
        if not file.is_file():
            raise FileNotFoundError(f"{path}: estimator.skops is missing; train it again.")
        try:
            est = skops.io.load(file, trusted=_trusted_types(file))
        except ValueError:
            raise
        except Exception as err:  # corrupt zip, bad schema
            raise ValueError(f"{file}: cannot be read ({type(err).__name__}: {err}); train the "
                             "estimator again.") from None
    _check_type(est, meta, path)
    return TrainedEstimator(model=meta["model"], n_fibres=meta["n_fibres"], acq=acq,
                            features=features, target_names=tuple(meta["targets"]),
                            estimator=est, estimator_name=meta["estimator"],
                            optimizer=meta.get("optimizer"), info=meta.get("info", {}))


def _estimator_class(meta: dict):
    """The class ``meta["estimator"]`` names (a learned estimator or a network)."""
    from .estimators import ESTIMATORS
    from .networks import NETWORKS

    name = meta.get("estimator")
    cls = {**ESTIMATORS, **NETWORKS}.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown estimator {name!r}; valid: "
                         f"{', '.join(sorted({**ESTIMATORS, **NETWORKS}))}")
    if ("keras" in meta) != (name in NETWORKS):
        raise ValueError(f"estimator {name!r} does not match the files it names")
    return cls


def _check_meta(meta: dict, meta_file: Path) -> None:
    """Every field of ``estimator.json`` that steers loading or names an output, checked
    before it is used (``ValueError`` naming the field): targets become map file names."""
    from ..models.registry import family_names
    from ..models.spec import model_from_spec
    from ..names import check_names

    check_names(meta["targets"], field="targets", source=str(meta_file))
    if not meta["targets"]:
        raise ValueError("targets is empty")
    model = meta["model"]
    if isinstance(model, dict):
        model_from_spec(model)
    elif model not in family_names():  # never a path: a crafted file must not read others
        raise ValueError(f"model {str(model)[:60]!r} is neither a model family "
                         f"({', '.join(family_names())}) nor a model spec")
    feats = meta["features"]
    lmax = feats.get("lmax", 6)
    if not (isinstance(lmax, int) and not isinstance(lmax, bool) and 0 <= lmax <= MAX_LMAX):
        raise ValueError(f"features.lmax {str(lmax)[:20]} is not an even order 0-{MAX_LMAX}")
    if isinstance(feats.get("model"), dict):
        model_from_spec(feats["model"])
    elif feats.get("model", "noddi") not in family_names():
        raise ValueError(f"features.model {str(feats.get('model'))[:60]!r} is not a model "
                         "family or spec")
    fibres = meta["n_fibres"]
    if isinstance(fibres, dict):  # a mixture: count -> weight
        counts = [int(k) if str(k) in "0123" and str(k) else -1 for k in fibres]
        if not all(isinstance(w, (int, float)) and 0 <= w <= 1 for w in fibres.values()):
            counts = []
    else:
        counts = fibres if isinstance(fibres, list) else [fibres]
    if not counts or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 3
                             for n in counts):
        raise ValueError(f"n_fibres {str(fibres)[:60]} is not a fibre count 0-3, a list of "
                         "them or a mixture of them")
    cls = _estimator_class(meta)
    params = meta.get("estimator_params", {})
    if not isinstance(params, dict):
        raise ValueError("estimator_params is not an object")
    if "keras" in meta:
        unknown = sorted(set(params) - set(cls().get_params()))
        if unknown:
            raise ValueError(f"estimator_params holds {unknown[:3]}, which {cls.__name__} "
                             "does not take")
        info = meta["keras"]
        for key in ("n_features_in", "n_outputs"):
            if not isinstance(info.get(key), int) or info[key] < 1:
                raise ValueError(f"keras.{key} is not a positive count")
        if not isinstance(info.get("single_target"), bool):
            raise ValueError("keras.single_target is not true/false")
    if not isinstance(meta.get("info", {}), dict):
        raise ValueError("info is not an object")
    if not isinstance(meta.get("optimizer"), (str, type(None))):
        raise ValueError("optimizer is not a name")


def _check_type(est, meta: dict, path: Path) -> None:
    """The loaded estimator is of the type ``estimator.json`` names (a swapped
    ``estimator.skops`` of another estimator is refused)."""
    cls = _estimator_class(meta)
    if type(est) is not cls or meta.get("estimator_class", cls.__name__) != cls.__name__:
        raise ValueError(f"{path}: the saved estimator is a {type(est).__name__} but "
                         f"estimator.json describes a {meta.get('estimator')!r} "
                         f"({cls.__name__}); the files do not belong together: train it "
                         "again with `microlearn learn`.")


def _numpy_graph(est):
    """The network's NumPy graph (:func:`.inference.numpy_graph`), or None."""
    from .inference import numpy_graph

    return numpy_graph(est.model_)


def _load_numpy_graph(path: Path, meta: dict, est) -> bool:
    """Give ``est`` the saved NumPy forward pass instead of a Keras model (no TensorFlow
    import); False when the folder has none (older estimators: Keras loads them)."""
    from .inference import forward_from_graph

    file = path / "network.npz"
    if "numpy_graph" not in meta or not file.is_file():
        return False
    try:
        with np.load(file, allow_pickle=False) as arrays:
            forward = forward_from_graph(meta["numpy_graph"], dict(arrays))
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise ValueError(f"{file}: cannot be read ({err}); train the estimator again.") from None
    est.model_ = None
    est.__dict__["_numpy_cache"] = (None, forward)
    return True


def _load_network(path: Path, meta: dict):
    from .networks import NETWORKS

    cls = NETWORKS.get(meta["estimator"])
    if cls is None:
        raise ValueError(f"{path}: unknown network {meta['estimator']!r}.")
    params = {k: tuple(v) if isinstance(v, list) else v
              for k, v in meta["estimator_params"].items()}
    try:
        est = cls(**params)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path / 'estimator.json'}: estimator_params are not valid for "
                         f"{cls.__name__} ({err}); train it again.") from None
    file = path / "network.keras"
    try:
        if not _load_numpy_graph(path, meta, est):
            from .networks import _keras, centered_dense_class
            from .optimizers import proximal_adagrad_class

            keras = _keras()
            centered_dense_class()
            proximal_adagrad_class()
            est.model_ = keras.saving.load_model(file, safe_mode=True, compile=False)
        scaling = np.load(path / "scaling.npz", allow_pickle=False)
        for k in _SCALING + tuple(k for k in _OPTIONAL if k in scaling.files):
            setattr(est, k, np.asarray(scaling[k], dtype=float))
    except FileNotFoundError:
        raise
    except Exception as err:
        raise ValueError(f"{file}: cannot be loaded safely ({type(err).__name__}: {err}); "
                         "train the estimator again.") from None
    head = path / "std_head.skops"
    if est.get_params().get("uncertainty"):  # a stale head of an earlier save is ignored
        if not head.is_file():
            raise FileNotFoundError(f"{path}: std_head.skops is missing; train it again.")
        import skops.io

        try:
            est.std_heads_ = skops.io.load(head, trusted=_trusted_types(head))
        except ValueError:
            raise
        except Exception as err:
            raise ValueError(f"{head}: cannot be read ({type(err).__name__}: {err}); train "
                             "the estimator again.") from None
    info = meta["keras"]
    est.n_features_in_ = info["n_features_in"]
    est.n_outputs_ = info["n_outputs"]
    est.single_target_ = info["single_target"]
    return est
