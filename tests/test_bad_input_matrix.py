"""Bad input, as a messy-data user meets it: one clear line, exit 2, nothing written.

Every case copies a small phantom, breaks one thing and runs the CLI; the error must be
one line on stderr (no traceback) naming the file or argument, and the output folder
must stay empty. Per-voxel problems instead mark those voxels NaN, report a count and
leave the rest of the volume as it would be.
"""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest

from microlearn.cli import main
from microlearn.data.dataset import load_dataset, load_maps
from microlearn.data.phantom import make_phantom


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(shape=(8, 8, 3), seed=1).save(tmp_path_factory.mktemp("m") / "ph")


@pytest.fixture(scope="module")
def estimator(phantom, tmp_path_factory):
    from microlearn.learning import train

    path = tmp_path_factory.mktemp("e") / "est"
    train("noddi", load_dataset(phantom).acq, estimator="polynomial", n_samples=2000).save(path)
    return path


def _rewrite(path, fn):
    path.write_text(fn(path.read_text()))


def _bvals(d, fn):
    b = np.loadtxt(d / "bvals")
    (d / "bvals").write_text(" ".join(f"{x:g}" for x in fn(b)) + "\n")


def _data(d, fn):
    img = nib.load(d / "data.nii.gz")
    nib.save(nib.Nifti1Image(fn(np.asarray(img.dataobj)), img.affine), d / "data.nii.gz")


def _affine(d):
    return nib.load(d / "data.nii.gz").affine


def _mask(d, arr, affine=None):
    affine = _affine(d) if affine is None else affine
    nib.save(nib.Nifti1Image(arr.astype(np.uint8), affine), d / "nodif_brain_mask.nii.gz")


def _truncate(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])


def _to_scheme(d, columns=7, te_sidecar=None):
    """Replace bvals/bvecs by a Camino STEJSKALTANNER scheme (optionally one row short of
    columns) and, optionally, a sidecar with another TE."""
    acq = load_dataset(d).acq
    rows = np.column_stack([acq.bvecs, acq.G, acq.Delta, acq.delta,
                            np.full(acq.n_measurements, 0.0895)])[:, :columns]
    (d / "bvals").unlink()
    (d / "bvecs").unlink()
    (d / "acquisition.json").unlink(missing_ok=True)
    (d / "p.scheme").write_text("VERSION: STEJSKALTANNER\n" + "\n".join(
        " ".join(f"{v:.10g}" for v in r) for r in rows) + "\n")
    if te_sidecar is not None:
        (d / "acquisition.json").write_text(f'{{"EchoTime": {te_sidecar}}}')


def _to_bids(d, drop=None):
    """Move the phantom into sub-01/dwi/ with BIDS names, dropping one file."""
    dwi = d / "sub-01" / "dwi"
    dwi.mkdir(parents=True)
    for src, ext in (("data.nii.gz", ".nii.gz"), ("bvals", ".bval"), ("bvecs", ".bvec")):
        if ext != drop:
            shutil.move(d / src, dwi / f"sub-01_dwi{ext}")
    (d / "nodif_brain_mask.nii.gz").unlink()
    (d / "acquisition.json").unlink(missing_ok=True)
    for f in list(d.iterdir()):
        if f.is_file():
            f.unlink()


def _te_without_b0(d):
    b = np.loadtxt(d / "bvals")
    te = np.where(b > 0, 0.0895, 0.06)
    te[np.flatnonzero(b > 0)[:30]] = 0.12  # a TE group of weighted volumes only
    (d / "acquisition.json").write_text(f'{{"TE": {te.tolist()}}}')


def _sigma_map(d, shape, value=30.0):
    nib.save(nib.Nifti1Image(np.full(shape, value, np.float32), _affine(d)), d / "sigma.nii.gz")


def _tamper_skops(est):
    from skops_tampering import tamper_skops

    tamper_skops(est / "estimator.skops", "builtins", "eval")


# id, how to break the copy (d: phantom copy, e: estimator copy, t: tmp), argv, expected text
CASES = [
    ("bvals-count", lambda d, e, t: _bvals(d, lambda b: b[:-1]), ["fit", "{d}"], "bvals"),
    ("bvecs-count", lambda d, e, t: np.savetxt(d / "bvecs", np.loadtxt(d / "bvecs")[:, :-2]),
     ["fit", "{d}"], "bvecs"),
    ("bvals-in-s/m2", lambda d, e, t: _bvals(d, lambda b: b * 1e6), ["fit", "{d}"], "s/m²"),
    ("bvals-in-ms/um2", lambda d, e, t: _bvals(d, lambda b: b / 1000), ["fit", "{d}"],
     "ms/µm²"),
    ("bvecs-2-rows", lambda d, e, t: np.savetxt(d / "bvecs", np.loadtxt(d / "bvecs")[:2]),
     ["fit", "{d}"], "3 rows"),
    ("bvecs-not-unit", lambda d, e, t: np.savetxt(
        d / "bvecs", np.loadtxt(d / "bvecs") * np.r_[1.0, 2.0, *np.ones(286)]),
     ["fit", "{d}"], "unit length"),
    ("no-b0", lambda d, e, t: _bvals(d, lambda b: np.where(b == 0, 1000, b)), ["fit", "{d}"],
     "no b0"),
    ("3d-data", lambda d, e, t: _data(d, lambda a: a[..., 0]), ["fit", "{d}"], "4-D"),
    ("mask-wrong-shape", lambda d, e, t: _mask(d, np.ones((5, 5, 5))), ["fit", "{d}"],
     "does not match"),
    ("mask-empty", lambda d, e, t: _mask(d, np.zeros((8, 8, 3))), ["fit", "{d}"], "empty"),
    ("missing-dwi", lambda d, e, t: (d / "data.nii.gz").unlink(), ["fit", "{d}"],
     "not found"),
    ("truncated-dwi", lambda d, e, t: _truncate(d / "data.nii.gz"), ["fit", "{d}"],
     "data.nii.gz"),
    ("corrupt-dwi", lambda d, e, t: (d / "data.nii.gz").write_bytes(b"not a nifti" * 100),
     ["fit", "{d}"], "data.nii.gz"),
    ("corrupt-mask", lambda d, e, t: _truncate(d / "nodif_brain_mask.nii.gz"),
     ["fit", "{d}"], "nodif_brain_mask"),
    ("estimator-other-acquisition", lambda d, e, t: _bvals(
        d, lambda b: np.where(b > 2500, 2500, b)), ["predict", "{e}", "{d}"], "does not match"),
    ("estimator-tampered", lambda d, e, t: _tamper_skops(e), ["predict", "{e}", "{d}"],
     "refusing to load"),
    ("estimator-corrupt-json", lambda d, e, t: (e / "estimator.json").write_text("{oops"),
     ["predict", "{e}", "{d}"], "corrupt"),
    ("estimator-missing", lambda d, e, t: shutil.rmtree(e), ["predict", "{e}", "{d}"],
     "estimator.json"),
    ("scheme-wrong-columns", lambda d, e, t: _to_scheme(d, columns=6), ["fit", "{d}"],
     "p.scheme"),
    ("scheme-te-disagrees-with-sidecar", lambda d, e, t: _to_scheme(d, te_sidecar=0.05),
     ["fit", "{d}"], "TE disagrees"),
    ("bids-without-bval", lambda d, e, t: _to_bids(d, drop=".bval"), ["fit", "{d}"],
     "no .bval file"),
    ("te-group-without-b0", lambda d, e, t: _te_without_b0(d), ["fit", "{d}"],
     "120.0 ms have no b0"),
    ("sigma-map-wrong-shape", lambda d, e, t: _sigma_map(d, (8, 8, 2)),
     ["fit", "{d}", "--sigma-map", "{d}/sigma.nii.gz"], "sigma.nii.gz: σ map shape"),
    ("unknown-model", None, ["fit", "{d}", "--model", "dti"], "dti"),
    ("unknown-method", None, ["fit", "{d}", "--method", "magic"], "magic"),
    ("unknown-estimator", None, ["learn", "--scheme", "hcp", "--estimator", "forest"],
     "forest"),
    ("unknown-optimizer", None, ["learn", "--scheme", "hcp", "--optimizer", "sgd9"], "sgd9"),
    ("unknown-scheme", None, ["learn", "--scheme", "siemens"], "siemens"),
    ("n-fibres-out-of-range", None, ["fit", "{d}", "--n-fibres", "5"], "--n-fibres"),
    ("chunk-voxels-zero", None, ["fit", "{d}", "--chunk-voxels", "0"], "--chunk-voxels"),
    ("n-samples-zero", None, ["learn", "--scheme", "hcp", "--n-samples", "0"], "--n-samples"),
    ("compare-unknown-method", None, ["compare", "{d}", "--methods", "mix,nope"], "nope"),
    ("output-is-a-file", lambda d, e, t: (t / "out").write_text("x"), ["fit", "{d}"],
     "output folder"),
    ("output-under-a-file", lambda d, e, t: (t / "blocker").write_text("x"),
     ["fit", "{d}", "--out", "{t}/blocker/sub"], "output folder"),
    ("out-is-the-input", None, ["fit", "{d}", "--out", "{d}"], "contains it"),
    ("out-contains-the-input", None, ["fit", "{d}", "--out", "{t}"], "contains it"),
    ("predict-out-is-the-estimator", None, ["predict", "{e}", "{d}", "--out", "{e}"],
     "contains it"),
    ("out-holds-a-map", lambda d, e, t: _put(t / "out", "odi.nii.gz"), ["fit", "{d}"],
     "--force"),
    ("out-holds-an-estimator", lambda d, e, t: shutil.copytree(e, t / "out"),
     ["learn", "--scheme", "hcp", "--n-samples", "500", "--estimator", "polynomial"],
     "already holds estimator.json"),
    ("out-holds-a-phantom", lambda d, e, t: shutil.copytree(d, t / "out"), ["phantom"],
     "already holds"),
    ("out-holds-a-report", lambda d, e, t: _put(t / "out", "index.html"),
     ["compare", "{d}", "--methods", "mix"], "already holds index.html"),
    ("work-dir-not-ours", lambda d, e, t: _put(t / "wd", "thesis.tex"),
     ["fit", "{d}", "--work-dir", "{t}/wd"], "not a microlearn work folder"),
    ("work-dir-holds-a-foreign-manifest", lambda d, e, t: (_put(t / "wd", "manifest.json",
                                                                 '{"app": "other"}'),
                                                            _put(t / "wd", "slab_00001.npz")),
     ["fit", "{d}", "--work-dir", "{t}/wd"], "manifest.json that microlearn did not write"),
    ("resume-by-another-version", lambda d, e, t: _put(
        t / "out.work", "manifest.json", '{"microlearn": "0.0.1"}'),
     ["fit", "{d}", "--resume"], "written by microlearn 0.0.1"),
]


def _meta(e, fn):
    """Rewrite the estimator's estimator.json through ``fn(meta)``."""
    import json

    meta = json.loads((e / "estimator.json").read_text())
    fn(meta)
    (e / "estimator.json").write_text(json.dumps(meta))


def _target(value):
    return lambda m: m["targets"].__setitem__(0, value)


def _as_network(m):
    """estimator.json of a Keras network with an unknown estimator parameter."""
    m.update(estimator="dnn", estimator_class="DNNRegressor", estimator_params={"bogus": 1},
             keras={"n_features_in": 10, "n_outputs": len(m["targets"]),
                    "single_target": False})


def _spec(t, name="stick", spec_name="evil"):
    """A composed model spec whose first compartment is called ``name``."""
    import json

    spec = {"format": "microlearn-model", "version": 1, "name": spec_name,
            "compose": [{"compartment": "Stick", "name": name},
                        {"compartment": "Ball", "name": "ball"}]}
    (t / "spec.json").write_text(json.dumps(spec))


def _raw_spec(t, **fields):
    """A family spec with ``fields`` replaced (written with NaN/Infinity as Python does)."""
    import json

    spec = {"format": "microlearn-model", "version": 1, "family": "noddi", "n_fibres": 1}
    (t / "spec.json").write_text(json.dumps({**spec, **fields}))


def _huge_header(path):
    """Patch a NIfTI header to claim 30000^3 voxels (its data must never be allocated)."""
    import gzip
    import struct

    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[40:48] = struct.pack("<4h", 3, 30_000, 30_000, 30_000)  # dim[0..3]
    path.write_bytes(gzip.compress(bytes(raw)))


def _set_bval(d, i, value):
    _bvals(d, lambda b: np.r_[b[:i], value, b[i + 1:]])


def _nan_bvec(d):
    b = np.loadtxt(d / "bvals")
    v = np.loadtxt(d / "bvecs")
    v[:, int(np.flatnonzero(b > 0)[0])] = np.nan
    np.savetxt(d / "bvecs", v)


def _to_mrtrix(d, negative=False):
    acq = load_dataset(d).acq
    b = acq.bvals / 1e6
    if negative:
        b[1] = -53.0
    (d / "bvals").unlink()
    (d / "bvecs").unlink()
    (d / "p.b").write_text("\n".join(" ".join(f"{x:.8g}" for x in (*v, bb))
                                     for v, bb in zip(acq.bvecs, b)) + "\n")


def _nan_scheme_g(d):
    _to_scheme(d)
    lines = (d / "p.scheme").read_text().splitlines()
    cols = lines[5].split()
    cols[3] = "nan"
    lines[5] = " ".join(cols)
    (d / "p.scheme").write_text("\n".join(lines) + "\n")


def _other_affine(d):
    m = np.asarray(nib.load(d / "nodif_brain_mask.nii.gz").dataobj)
    _mask(d, m, np.diag([-2.5, 2.5, 2.5, 1.0]))


def _link(path, to):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(to)


def _live_lock(path):
    """A lock held by a live process of this host (the test runner's parent)."""
    import json
    import os

    from microlearn.data import locks

    path.parent.mkdir(parents=True, exist_ok=True)
    owner = {**locks.owner_record(), "pid": os.getppid(),
             "start_ticks": locks._start_ticks(os.getppid()), "command": "microlearn fit x"}
    path.write_text(json.dumps(owner))


def _interrupted_work(d, t, craft=None):
    """``t/out.work`` as an interrupted ``fit d --method dictionary --sigma 30
    --chunk-voxels 40`` leaves it (every slab kept), then ``craft(work)`` damages it."""
    from microlearn.run.chunked import FitBlock, run_chunked

    ds = load_dataset(d)
    block = FitBlock(model="noddi", n_fibres=1, method="dictionary", acq=ds.acq.to_dict(),
                     sigma=30.0)
    run_chunked(block, ds, t / "out", chunk_voxels=40, keep_work=True, progress=False)
    shutil.rmtree(t / "out")
    if craft is not None:
        craft(t / "out.work")


def _slab_key(work, key="../../x_odi"):
    with np.load(work / "slab_00000.npz") as npz:
        maps = {k: npz[k] for k in npz.files}
    maps[key] = maps["odi"]
    np.savez(work / "slab_00000.npz", **maps)


def _slab_shape(work):
    with np.load(work / "slab_00001.npz") as npz:
        maps = {k: npz[k] for k in npz.files}
    maps["odi"] = maps["odi"][:-1]
    np.savez(work / "slab_00001.npz", **maps)


def _slab_huge_header(work):
    """A slab whose odi.npy header claims 10^12 values (never to be allocated)."""
    import io
    import zipfile

    from numpy.lib import format as npy

    path = work / "slab_00000.npz"
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    head = {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    buf = io.BytesIO()
    npy.write_array_header_1_0(buf, head)
    members["odi.npy"] = buf.getvalue() + b"\0" * 64  # the header, then far too little
    with zipfile.ZipFile(path, "w") as z:
        for name, raw in members.items():
            z.writestr(name, raw)


RESUME = ["fit", "{d}", "--method", "dictionary", "--sigma", "30", "--chunk-voxels", "40",
          "--resume"]

# Issue 23: crafted and damaged files, numbers that make no sense, locked folders
CASES += [
    ("estimator-target-escapes", lambda d, e, t: _meta(e, _target("../../study/data")),
     ["predict", "{e}", "{d}"], "targets '../../study/data' is not a valid name"),
    ("estimator-target-outside-out", lambda d, e, t: _meta(e, _target("../../x_odi")),
     ["predict", "{e}", "{d}"], "targets"),
    ("estimator-target-absolute", lambda d, e, t: _meta(e, _target(str(t / "x"))),
     ["predict", "{e}", "{d}"], "targets"),
    ("estimator-target-dotdot", lambda d, e, t: _meta(e, _target("..")),
     ["predict", "{e}", "{d}"], "targets"),
    ("estimator-target-number", lambda d, e, t: _meta(e, _target(5)),
     ["predict", "{e}", "{d}"], "targets"),
    ("estimator-target-too-long", lambda d, e, t: _meta(e, _target("a" * 300)),
     ["predict", "{e}", "{d}"], "targets"),
    ("estimator-targets-twice", lambda d, e, t: _meta(
        e, lambda m: m.__setitem__("targets", [m["targets"][0]] * 2)),
     ["predict", "{e}", "{d}"], "appears twice"),
    ("estimator-model-is-a-path", lambda d, e, t: _meta(
        e, lambda m: m.__setitem__("model", str(d / "acquisition.json"))),
     ["predict", "{e}", "{d}"], "neither a model family"),
    ("estimator-model-spec-escapes", lambda d, e, t: _meta(e, lambda m: m.__setitem__(
        "model", {"format": "microlearn-model", "name": "x", "compose": [
            {"compartment": "Stick", "name": "../../x"}]})),
     ["predict", "{e}", "{d}"], "compartment name"),
    ("estimator-n-fibres-nonsense", lambda d, e, t: _meta(
        e, lambda m: m.__setitem__("n_fibres", "all")), ["predict", "{e}", "{d}"],
     "n_fibres"),
    ("estimator-features-order-huge", lambda d, e, t: _meta(
        e, lambda m: m["features"].__setitem__("lmax", 1_000_000)), ["predict", "{e}", "{d}"],
     "features.lmax"),
    ("estimator-unknown-name", lambda d, e, t: _meta(
        e, lambda m: m.__setitem__("estimator", "magic")), ["predict", "{e}", "{d}"],
     "unknown estimator 'magic'"),
    ("estimator-params-unknown-key", lambda d, e, t: _meta(e, _as_network),
     ["predict", "{e}", "{d}"], "does not take"),
    ("estimator-swapped-skops", lambda d, e, t: shutil.copy(
        e.parent / "other" / "estimator.skops", e / "estimator.skops"),
     ["predict", "{e}", "{d}"], "the files do not belong together"),
    ("spec-compartment-absolute-path", lambda d, e, t: _spec(t, str(t / "elsewhere" / "x")),
     ["fit", "{d}", "--model", "{t}/spec.json"], "compartment name"),
    ("spec-compartment-dotdot", lambda d, e, t: _spec(t, "../x"),
     ["fit", "{d}", "--model", "{t}/spec.json"], "compartment name '../x'"),
    ("spec-name-escapes", lambda d, e, t: _spec(t, spec_name="../../evil"),
     ["fit", "{d}", "--model", "{t}/spec.json"], "name '../../evil'"),
    ("phantom-spec-compartment-absolute-path", lambda d, e, t: _spec(
        t, str(t / "elsewhere" / "x")),
     ["phantom", "--model", "{t}/spec.json", "--shape", "4", "4", "2"], "compartment name"),
    ("spec-setting-nan", lambda d, e, t: _raw_spec(t, settings={"d_par": float("nan")}),
     ["fit", "{d}", "--model", "{t}/spec.json"], "finite numbers"),
    ("spec-settings-not-a-mapping", lambda d, e, t: _raw_spec(t, settings=[1]),
     ["fit", "{d}", "--model", "{t}/spec.json"], "settings must map"),
    ("spec-step-infinite", lambda d, e, t: _raw_spec(t, steps=[["fix", "odi", float("inf")]]),
     ["fit", "{d}", "--model", "{t}/spec.json"], "not a name or a finite number"),
    ("spec-step-list-value", lambda d, e, t: _raw_spec(t, steps=[["fix", "mu", [1, 2, 3]]]),
     ["fit", "{d}", "--model", "{t}/spec.json"], "not a name or a finite number"),
    ("spec-version-null", lambda d, e, t: _raw_spec(t, version=None),
     ["fit", "{d}", "--model", "{t}/spec.json"], "version None"),
    ("spec-fibres-out-of-range", lambda d, e, t: _raw_spec(t, n_fibres=99),
     ["phantom", "--model", "{t}/spec.json"], "n_fibres 99"),
    ("spec-not-text", lambda d, e, t: (t / "spec.json").write_bytes(b"\xff\xfe\x00" * 50),
     ["fit", "{d}", "--model", "{t}/spec.json"], "spec.json: not a model spec"),
    ("spec-nested-too-deeply", lambda d, e, t: (t / "spec.json").write_text(
        "[" * 100_000 + "]" * 100_000), ["fit", "{d}", "--model", "{t}/spec.json"],
     "spec.json: not a model spec"),
    ("estimator-json-nested-too-deeply", lambda d, e, t: (e / "estimator.json").write_text(
        "[" * 100_000 + "]" * 100_000), ["predict", "{e}", "{d}"], "corrupt"),
    ("estimator-json-not-an-object", lambda d, e, t: (e / "estimator.json").write_text("[1]"),
     ["predict", "{e}", "{d}"], "corrupt"),
    ("sidecar-not-text", lambda d, e, t: (d / "acquisition.json").write_bytes(b"\xff" * 99),
     ["fit", "{d}"], "acquisition.json: not valid JSON"),
    ("mask-header-huge", lambda d, e, t: _huge_header(d / "nodif_brain_mask.nii.gz"),
     ["fit", "{d}"], "does not match"),
    ("bvals-negative", lambda d, e, t: _set_bval(d, 1, -53), ["fit", "{d}"], "negative"),
    ("bvals-nan", lambda d, e, t: _set_bval(d, 1, np.nan), ["fit", "{d}"], "not a number"),
    ("mrtrix-negative-b", lambda d, e, t: _to_mrtrix(d, negative=True), ["fit", "{d}"],
     "p.b: b-value -53 of volume 1 is negative"),
    ("bvecs-nan-on-weighted", lambda d, e, t: _nan_bvec(d), ["fit", "{d}"],
     "bvecs: the direction of weighted volume"),
    ("info-bvals-negative", lambda d, e, t: _set_bval(d, 1, -53), ["info", "{d}"],
     "negative"),
    ("scheme-nan-gradient", lambda d, e, t: _nan_scheme_g(d), ["fit", "{d}"],
     "p.scheme: G holds"),
    ("sidecar-negative-Delta", lambda d, e, t: (d / "acquisition.json").write_text(
        '{"Delta": -0.04}'), ["fit", "{d}"], "acquisition.json: Delta holds"),
    ("sidecar-nan-TE", lambda d, e, t: (d / "acquisition.json").write_text('{"TE": NaN}'),
     ["fit", "{d}"], "acquisition.json: TE holds"),
    ("sigma-nan", None, ["fit", "{d}", "--sigma", "nan"], "--sigma nan"),
    ("sigma-inf", None, ["fit", "{d}", "--sigma", "inf"], "--sigma inf"),
    ("sigma-negative", None, ["fit", "{d}", "--sigma", "-5"], "--sigma -5"),
    ("phantom-snr-nan", None, ["phantom", "--snr", "nan"], "--snr nan: give a finite"),
    ("phantom-shape-zero", None, ["phantom", "--shape", "0", "4", "4"], "--shape 0"),
    ("phantom-echo-time-negative", None, ["phantom", "--echo-times", "60", "-80"],
     "--echo-times -80.0"),
    ("learn-snr-infinite", None, ["learn", "--scheme", "hcp", "--snr", "inf"], "--snr inf"),
    ("learn-learning-rate-negative", None, ["learn", "--scheme", "hcp", "--learning-rate",
                                            "-0.1"], "--learning-rate -0.1"),
    ("plan-snr-zero", None, ["plan", "--scheme", "hcp", "--snr", "0"], "--snr 0"),
    ("sigma-map-all-nan", lambda d, e, t: _sigma_map(d, (8, 8, 3), np.nan),
     ["fit", "{d}", "--sigma-map", "{d}/sigma.nii.gz"], "no voxel of the brain mask has a"),
    ("sigma-map-negative", lambda d, e, t: _sigma_map(d, (8, 8, 3), -30.0),
     ["fit", "{d}", "--sigma-map", "{d}/sigma.nii.gz"], "positive finite σ"),
    ("sigma-map-other-affine", lambda d, e, t: nib.save(nib.Nifti1Image(
        np.full((8, 8, 3), 30.0, np.float32), np.diag([2.5, 2.5, 2.5, 1])),
        d / "sigma.nii.gz"), ["fit", "{d}", "--sigma-map", "{d}/sigma.nii.gz"],
     "affine differs"),
    ("mask-other-affine", lambda d, e, t: _other_affine(d), ["fit", "{d}"],
     "nodif_brain_mask.nii.gz: the mask's affine differs"),
    ("out-holds-a-dangling-link", lambda d, e, t: _link(t / "out" / "odi.nii.gz",
                                                        t / "nowhere"),
     ["fit", "{d}"], "already holds odi.nii.gz"),
    ("out-subfolder-links-outside", lambda d, e, t: _link(t / "out" / "truth",
                                                          t / "elsewhere"),
     ["phantom", "--shape", "4", "4", "2", "--force"], "leads out of it"),
    ("work-dir-in-use", lambda d, e, t: _live_lock(t / "out.work" / "run.lock"),
     ["fit", "{d}"], "in use by another microlearn run: pid"),
    ("out-in-use", lambda d, e, t: _live_lock(t / "out" / ".microlearn.lock"),
     ["fit", "{d}"], "in use by another microlearn run"),
    ("bids-derivative-exists", lambda d, e, t: (_to_bids(d), _put(
        t / "out" / "sub-01" / "dwi", "sub-01_model-noddi_param-odi_dwimap.nii.gz")),
     ["fit", "{d}"], "already holds sub-01_model-noddi_param-"),
    ("resume-slab-key-escapes", lambda d, e, t: _interrupted_work(d, t, _slab_key),
     RESUME, "slab_00000.npz: damaged work file (key '../../x_odi'"),
    ("resume-slab-truncated", lambda d, e, t: _interrupted_work(
        d, t, lambda w: _truncate(w / "slab_00001.npz")), RESUME,
     "slab_00001.npz: damaged work file (BadZipFile"),
    ("resume-slab-wrong-shape", lambda d, e, t: _interrupted_work(d, t, _slab_shape),
     RESUME, "slab_00001.npz: damaged work file"),
    ("resume-slab-claims-a-huge-array", lambda d, e, t: _interrupted_work(
        d, t, _slab_huge_header), RESUME, "odi has shape (1000000000000,)"),
    ("resume-slab-not-of-this-job", lambda d, e, t: _interrupted_work(
        d, t, lambda w: shutil.copy(w / "slab_00000.npz", w / "slab_00099.npz")), RESUME,
     "not a slab of this job"),
    ("resume-manifest-damaged", lambda d, e, t: _interrupted_work(
        d, t, lambda w: (w / "manifest.json").write_text("{oops")), RESUME,
     "manifest.json: damaged work file"),
]


def _put(folder, name, text="keep me"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def _snapshot(folder):
    """Every file below ``folder`` with its bytes (empty when it does not exist)."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _tree(root):
    """Every entry below ``root`` (links not followed): files by content hash, folders,
    links by target."""
    import hashlib
    import os

    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(folder, name)
            if os.path.islink(p):
                out[p] = ("link", os.readlink(p))
            elif name in dirs:
                out[p] = ("dir",)
            else:
                with open(p, "rb") as fh:
                    out[p] = ("file", hashlib.sha256(fh.read()).hexdigest())
    return out


#: Files a crafted name would reach (``../../study/data``, ``../../x_odi`` from --out).
SENTINELS = ("study/data.nii.gz", "x_odi.nii.gz", "evil.json", "t/elsewhere/x_mu.nii.gz",
             "t/elsewhere/keep.txt")


@pytest.fixture(scope="module")
def other_estimator(phantom, tmp_path_factory):
    """An estimator of another type on the same acquisition (its skops file is swapped in)."""
    from microlearn.learning import train

    path = tmp_path_factory.mktemp("o") / "other"
    train("noddi", load_dataset(phantom).acq, estimator="bayesian", n_samples=500).save(path)
    return path


@pytest.mark.parametrize("name, breaks, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(name, breaks, argv, expected, phantom, estimator,
                                        other_estimator, tmp_path, capsys):
    base = tmp_path / "sentinels"  # crafted names reach up from t/out into this tree
    t = base / "t"
    t.mkdir(parents=True)
    for rel in SENTINELS:
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(f"sentinel {rel}")
    d = shutil.copytree(phantom, t / "d")
    e = shutil.copytree(estimator, t / "e")
    shutil.copytree(other_estimator, t / "other")
    if breaks is not None:
        breaks(d, e, t)
    before = _tree(tmp_path)
    args = [a.format(d=d, e=e, t=t) for a in argv]
    if "--out" not in args and args[0] not in ("info", "plan"):
        args += ["--out", str(t / "out")]
    code = main(args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    after = _tree(tmp_path)  # nothing written, removed or changed anywhere
    assert after == before, sorted(set(after.items()) ^ set(before.items()))


def test_bvecs_as_n_by_3_are_read_the_same(phantom, tmp_path):
    d = shutil.copytree(phantom, tmp_path / "d")
    np.savetxt(d / "bvecs", np.loadtxt(d / "bvecs").T)
    assert load_dataset(d).acq.matches(load_dataset(phantom).acq)


@pytest.mark.parametrize("damage", ["all-nan", "part-nan", "negative-b0", "all-zero",
                                    "zero-b0"])
def test_bad_voxels_become_nan_and_are_counted(damage, phantom, tmp_path, capsys):
    d = shutil.copytree(phantom, tmp_path / "d")
    img = nib.load(d / "data.nii.gz")
    data = np.asarray(img.dataobj).copy()
    mask = np.asarray(nib.load(d / "nodif_brain_mask.nii.gz").dataobj) > 0
    idx = tuple(np.argwhere(mask)[:2].T)
    b0 = np.flatnonzero(np.loadtxt(d / "bvals") == 0)
    if damage == "all-nan":
        data[idx] = np.nan
    elif damage == "part-nan":
        data[idx + (slice(3, 9),)] = np.nan
    elif damage == "negative-b0":
        for x, y, z in zip(*idx):
            data[x, y, z, b0] = -10
    elif damage == "all-zero":
        data[idx] = 0
    else:
        for x, y, z in zip(*idx):
            data[x, y, z, b0] = 0
    nib.save(nib.Nifti1Image(data, img.affine), d / "data.nii.gz")
    with pytest.warns(RuntimeWarning, match="2 voxel"):
        assert main(["fit", str(d), "--method", "dictionary", "--out", str(tmp_path / "o")]) == 0
    assert main(["fit", str(phantom), "--method", "dictionary",
                 "--out", str(tmp_path / "ref")]) == 0
    got, ref = load_maps(tmp_path / "o"), load_maps(tmp_path / "ref")
    bad = np.zeros(mask.shape, bool)
    bad[idx] = True
    assert np.isnan(got["odi"][bad]).all()
    np.testing.assert_array_equal(got["odi"][mask & ~bad], ref["odi"][mask & ~bad])


def test_negative_and_zero_weighted_samples_are_data(phantom, tmp_path):
    """Denoised/eddy-corrected scans have negative high-b samples: the voxel is fitted."""
    d = shutil.copytree(phantom, tmp_path / "d")
    img = nib.load(d / "data.nii.gz")
    data = np.asarray(img.dataobj).astype(np.float32)
    mask = np.asarray(nib.load(d / "nodif_brain_mask.nii.gz").dataobj) > 0
    idx = tuple(np.argwhere(mask)[:3].T)
    dw = np.flatnonzero(np.loadtxt(d / "bvals") > 2500)[:4]
    for x, y, z in zip(*idx):
        data[x, y, z, dw[:2]] = -3.0
        data[x, y, z, dw[2:]] = 0.0
    nib.save(nib.Nifti1Image(data, img.affine), d / "data.nii.gz")
    assert main(["fit", str(d), "--out", str(tmp_path / "o")]) == 0
    got = load_maps(tmp_path / "o")
    assert np.isfinite(got["odi"][idx]).all() and np.isfinite(got["icvf"][idx]).all()
    assert np.isfinite(got["odi"][mask]).all()


def test_sigma_map_equal_to_the_scalar_gives_the_same_maps(phantom, tmp_path):
    d = shutil.copytree(phantom, tmp_path / "d")
    _sigma_map(d, (8, 8, 3))
    assert main(["fit", str(d), "--sigma", "30", "--out", str(tmp_path / "a")]) == 0
    assert main(["fit", str(d), "--sigma-map", str(d / "sigma.nii.gz"),
                 "--out", str(tmp_path / "b")]) == 0
    a, b = load_maps(tmp_path / "a"), load_maps(tmp_path / "b")
    mask = np.asarray(nib.load(d / "nodif_brain_mask.nii.gz").dataobj) > 0
    for k in ("odi", "icvf", "fiso", "odi_std", "residual_rms"):
        np.testing.assert_allclose(a[k][mask], b[k][mask], rtol=1e-5, atol=1e-6)
    import json

    noise = json.loads((tmp_path / "b" / "fit.json").read_text())["noise"]
    assert noise["sigma"] == "map" and noise["source"].endswith("sigma.nii.gz")
