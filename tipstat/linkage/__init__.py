"""Linkage of victim records across reporting entities: pseudonymous keys (:mod:`.keys`), exact
linkage with de-duplication and covariate resolution (:mod:`.exact`) and optional probabilistic
linkage with Splink (:mod:`.probabilistic`, extra ``linkage``)."""

from .exact import Persons, link_exact
from .keys import Secret, check_no_identifiers, person_keys, pseudonymise

__all__ = ["Persons", "Secret", "check_no_identifiers", "link_exact", "person_keys", "pseudonymise"]
