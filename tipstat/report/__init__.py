"""Plots and the HTML report (need the ``plot`` / ``report`` extras).

Nothing here is imported by ``import tipstat``: ``tipstat.report.plots`` imports matplotlib and
``tipstat.report.html`` imports Jinja2 only when their functions are called.
"""
