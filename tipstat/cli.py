"""The ``tipstat`` command line."""

from __future__ import annotations

import argparse
import sys

from .errors import TipstatError


def _demo(args: argparse.Namespace) -> int:
    from . import datasets
    from .models.loglinear import fit_loglinear

    h = datasets.load("UK_5")
    print(f"UK 2013 National Crime Agency data ({datasets.citation('UK_5')})")
    print(h.summary())
    print()
    for terms in ("independence", "all2"):
        print(fit_loglinear(h, terms).summary())
        print()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tipstat", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the main job on bundled example data")
    p.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TipstatError as exc:
        if args.debug:
            raise
        print(f"tipstat: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
