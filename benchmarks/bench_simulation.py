"""Simulation throughput: noiseless NODDI signals per second on the hcp scheme."""

from __future__ import annotations

from microlearn import Acquisition, noddi, sample_parameters, simulate

from .common import median_time, print_table


def main(quick: bool = False) -> None:
    acq = Acquisition.scheme("hcp")
    n = 50_000 if quick else 1_000_000
    rows = []
    for n_fibres in (1, 2, 3):
        model = noddi(n_fibres)
        m = n if n_fibres == 1 else n // 5
        params = sample_parameters(model, m, random_state=0)
        seconds, _ = median_time(lambda model=model, params=params: simulate(model, acq, params),
                                 1 if quick else 3)
        rows.append({"model": model.name, "signals": m, "seconds": seconds,
                     "signals_per_s": m / seconds,
                     "s_per_1e6": 1e6 / (m / seconds)})
    print_table(rows, ["model", "signals", "seconds", "signals_per_s", "s_per_1e6"])
    print("aim: 1e6 single-fibre signals in < 10 s on 2 cores")
