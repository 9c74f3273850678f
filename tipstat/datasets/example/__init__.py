"""Bundled synthetic IC-TIP example (data files only): see :func:`tipstat.datasets.example`."""
