"""``microlearn info``: describe a dataset and list detected problems."""

from __future__ import annotations

from ..cli import echo
from ._common import add_input_arguments, load_input


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="shape, shells, b0 count, mask voxels, problems")
    add_input_arguments(p)
    p.set_defaults(run=run)


def run(args) -> int:
    ds = load_input(args)
    acq = ds.acq
    echo(f"data      : {ds.path}")
    echo(f"shape     : {ds.shape} x {acq.n_measurements} volumes")
    echo(f"b0        : {acq.n_b0} volume(s)")
    for k, b in enumerate(acq.shell_bvals):
        sel = acq.shell_index == k
        echo(f"shell     : b={b / 1e6:7.0f} s/mm²  n={int(sel.sum()):4d}  "
              f"δ={acq.delta[sel][0] * 1e3:.1f} ms  Δ={acq.Delta[sel][0] * 1e3:.1f} ms  "
              f"G≤{acq.G[sel].max() * 1e3:.0f} mT/m")
    te_idx = acq.te_index
    if acq.TE is None:
        echo("TE groups : 1 (echo time unknown)")
    else:
        echo(f"TE groups : {acq.n_te}")
        for k, te in enumerate(acq.te_values):
            sel = te_idx == k
            echo(f"  TE {te * 1e3:6.1f} ms  n={int(sel.sum()):4d}  "
                 f"b0={int((sel & acq.b0_mask).sum())}  "
                 f"b≤{acq.bvals[sel].max() / 1e6:.0f} s/mm²")
    echo(f"input form: {ds.source.get('form', 'hcp')}")
    echo(f"mask      : {int(ds.mask.sum())} voxels")
    problems = []
    msg = bad_voxels(ds)
    if msg:
        problems.append(msg)
    if acq.n_b0 < 2:
        problems.append("only one b0: the noise level cannot be estimated from b0 repeats.")
    from ..data.qc import input_warnings

    problems += input_warnings(ds)  # reads the central slabs only
    echo("problems  : " + ("none" if not problems else ""))
    for p in problems:
        echo(f"  - {p}")
    return 0


#: Brain voxels read at a time by ``info`` (bounded memory whatever the volume's size).
INFO_CHUNK_VOXELS = 20_000


def bad_voxels(ds, chunk_voxels: int = INFO_CHUNK_VOXELS) -> str:
    """The one-line count of brain voxels that cannot be fitted, read slab by slab."""
    import numpy as np

    from ..data.voxels import validate_signal
    from ..run.chunked import plan_slabs, read_slab

    mask = np.asarray(ds.mask, bool)
    path = ds.image.get_filename()
    n_bad = 0
    step = max(1, 4 * chunk_voxels // max(1, mask.shape[0] * mask.shape[1]))  # sparse masks
    slabs = [(z, min(z + step, b)) for a, b in plan_slabs(mask, chunk_voxels)
             for z in range(a, b, step)]
    for z0, z1 in slabs:
        sub = mask[..., z0:z1]
        if sub.any():
            bad, _ = validate_signal(read_slab(path, z0, z1)[sub], None, ds.acq)
            n_bad += int(bad.sum())
    if not n_bad:
        return ""
    return f"{n_bad} voxel(s) have NaN/infinite samples or a b0 mean <= 0; they get NaN maps."
