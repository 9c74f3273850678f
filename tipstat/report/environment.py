"""The Jinja environment of every page tipstat renders (the templates of
``tipstat/report/templates``), written once: the MSE report (:mod:`tipstat.report.html`) and the
survey sections (:mod:`tipstat.report.survey`) add their own filters to it."""

from __future__ import annotations

from typing import Any

from .._format import number


def environment() -> Any:
    """A Jinja environment over the report templates: HTML autoescaped, block whitespace
    trimmed, and the filter ``num`` (:func:`tipstat._format.number` with typographic signs).

    Examples
    --------
    >>> env = environment()
    >>> env.from_string("{{ 12345.6|num }}").render()
    '12,346'
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("tipstat.report", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["num"] = lambda x, digits=0: number(x, digits, html=True)
    return env
