"""``microlearn info``: describe a dataset and list detected problems."""

from __future__ import annotations

from ..cli import echo
from ._common import add_input_arguments, load_input


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="shape, shells, b0 count, mask voxels, problems")
    add_input_arguments(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..data.voxels import validate_signal

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
    data = ds.load_data()
    bad, msg = validate_signal(data, ds.mask, acq)
    if msg:
        problems.append(msg)
    if acq.n_b0 < 2:
        problems.append("only one b0: the noise level cannot be estimated from b0 repeats.")
    from ..data.qc import input_warnings

    problems += input_warnings(ds, data=data)
    echo("problems  : " + ("none" if not problems else ""))
    for p in problems:
        echo(f"  - {p}")
    return 0
