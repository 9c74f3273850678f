"""Crosswalk tables (data files); a package only so that they ship with tipstat."""
