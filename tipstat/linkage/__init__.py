"""Linkage of victim records across reporting entities: exact linkage with de-duplication and
covariate resolution (:mod:`.exact`: :func:`persons`, :func:`link_exact`) and optional
probabilistic linkage with Splink (:mod:`.probabilistic`, extra ``linkage``).

Linkage reads the records of :mod:`tipstat.ictip` (never the other way round). The pseudonymous
keys it links on are made where the records are read (:mod:`tipstat.ictip.keys`); their public
tools are handed on here for the linkage unit.
"""

from ..ictip.keys import Secret, check_no_identifiers, person_keys, pseudonymise
from .exact import Persons, link_exact, persons

__all__ = ["Persons", "Secret", "check_no_identifiers", "link_exact", "person_keys", "persons",
           "pseudonymise"]
