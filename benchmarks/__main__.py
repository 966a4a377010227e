"""Run every ``benchmarks/bench_*.py``: ``python -m benchmarks [--quick] [--only NAME]``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import time

import benchmarks


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--only", action="append", default=[],
                        help="run only this benchmark (e.g. fitting); repeatable")
    args = parser.parse_args()
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(benchmarks.__path__)
                   if m.name.startswith("bench_"))
    unknown = set(args.only) - set(names)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {names}")
    for name in names:
        if args.only and name not in args.only:
            continue
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        importlib.import_module(f"benchmarks.bench_{name}").main(quick=args.quick)
        print(f"--- {name} done in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
