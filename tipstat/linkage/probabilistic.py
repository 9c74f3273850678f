"""Probabilistic (Fellegi-Sunter) linkage with Splink, for records without a reliable key.

Optional extra ``linkage`` (``pip install tipstat[linkage]``: Splink and DuckDB). Runs only in
secure mode, inside the environment that may see clear quasi-identifiers (names, birth date,
sex). The Fellegi-Sunter model scores each candidate pair of records by the match weight

.. math::

    w = \\log_2 \\frac{\\lambda}{1-\\lambda} + \\sum_k \\log_2 \\frac{m_{k,\\gamma_k}}{u_{k,\\gamma_k}},
    \\qquad p = \\frac{2^w}{1 + 2^w},

where ``gamma_k`` is the agreement level on field ``k`` (Jaro-Winkler bands for names, exact
match for birth date and sex), ``m`` / ``u`` the probabilities of that level among matches /
non-matches (``u`` from random pairs, ``m`` by EM) and ``lambda`` the prior match probability.
Records are persons when they are connected by pairs with ``p >= threshold`` (connected
components).

What leaves this module is identifier-free: a ``record_id -> person_id`` map (for
:func:`tipstat.ictip.capture_histories`, ``person_map=``), the pairs near the threshold for
clerical review as record ids, probabilities and agreement levels (the reviewer looks the records
up in the secure system), and a sensitivity table of N-hat across thresholds (missed links
inflate N-hat, false links deflate it).

The DuckDB backend runs locally; pass ``db_api=splink.SparkAPI(spark_session=...)`` to run the
same model on Spark for national-scale data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["ProbabilisticLinkage", "link_probabilistic", "sensitivity"]

DEFAULT_FIELDS = ("family_name", "given_name", "birth_date", "sex")


@dataclass
class ProbabilisticLinkage:
    """Result of :func:`link_probabilistic` (no clear identifier inside).

    Attributes
    ----------
    pairs : DataFrame
        Scored candidate pairs: ``record_id_l``, ``record_id_r``, ``match_probability``,
        ``match_weight`` and the agreement levels ``gamma_<field>``.
    record_ids : Index
        Every record linked.
    threshold : float
        Default match threshold.
    review_band : (float, float)
        Pairs with ``match_probability`` in this band go to clerical review.
    """

    pairs: pd.DataFrame
    record_ids: pd.Index
    threshold: float
    review_band: tuple[float, float]

    def person_map(self, threshold: float | None = None) -> pd.Series:
        """``record_id -> person_id``: connected components of pairs at or above ``threshold``."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        t = self.threshold if threshold is None else threshold
        pos = pd.Series(np.arange(len(self.record_ids)), index=self.record_ids)
        keep = self.pairs[self.pairs["match_probability"] >= t]
        i = pos[keep["record_id_l"]].to_numpy()
        j = pos[keep["record_id_r"]].to_numpy()
        n = len(pos)
        graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        return pd.Series(labels, index=self.record_ids, name="person_id")

    @property
    def review(self) -> pd.DataFrame:
        """Pairs for clerical review (probability inside :attr:`review_band`), least certain
        first (closest to 0.5)."""
        lo, hi = self.review_band
        r = self.pairs[(self.pairs.match_probability >= lo) & (self.pairs.match_probability <= hi)]
        return r.iloc[np.argsort(np.abs(r.match_probability.to_numpy() - 0.5))].reset_index(drop=True)


def link_probabilistic(
    records: pd.DataFrame,
    *,
    secure: bool = False,
    fields: Sequence[str] = DEFAULT_FIELDS,
    threshold: float = 0.9,
    review_band: tuple[float, float] = (0.5, 0.95),
    min_probability: float = 0.01,
    blocking: Sequence[Sequence[str]] = (("birth_date",), ("family_name", "given_name")),
    seed: int = 0,
    db_api: Any = None,
) -> ProbabilisticLinkage:
    """Fit a Splink model to clear quasi-identifiers and score candidate pairs of records.

    Parameters
    ----------
    records : DataFrame
        One row per record with ``record_id`` (or ``entity_id`` and ``source_record_id``, giving
        the same ids as :func:`tipstat.ictip.read_records`) and the ``fields``.
    secure : bool
        Must be True: the table holds clear identifiers (ICTIP.md 6.3 rule 7).
    fields : sequence of str
        Compared fields: names by Jaro-Winkler (>= 0.95, >= 0.88), others exactly.
    threshold : float
        Match probability at or above which two records are the same person.
    review_band : (float, float)
        Probabilities sent to clerical review.
    min_probability : float
        Pairs scored below this are not kept.
    blocking : sequence of field tuples
        Candidate pairs agree exactly on at least one of these (and EM is trained on each).
    seed : int
        Seed of Splink's random sampling of pairs for ``u``.
    db_api : optional
        A Splink database API (default ``splink.DuckDBAPI()``; ``splink.SparkAPI`` for Spark).

    Returns
    -------
    ProbabilisticLinkage

    Examples
    --------
    >>> from tipstat import simulate
    >>> c = simulate.country(300, seed=1, typo_rate=0.05)
    >>> plink = link_probabilistic(c.clear_records, secure=True)  # doctest: +SKIP
    >>> plink.person_map().nunique() <= len(c.clear_records)  # doctest: +SKIP
    True
    """
    if not secure:
        raise InputError("probabilistic linkage reads clear identifiers: run it in a secure "
                         "environment with secure=True (ICTIP.md 6.3 rule 7)")
    try:
        import splink.comparison_library as cl
        from splink import DuckDBAPI, Linker, SettingsCreator, block_on
    except ImportError as exc:  # pragma: no cover - optional extra
        raise ImportError("probabilistic linkage needs the 'linkage' extra: "
                          "pip install tipstat[linkage]") from exc
    if not 0 < threshold < 1 or not 0 <= review_band[0] <= review_band[1] <= 1:
        raise InputError("threshold must be in (0, 1) and review_band a (low, high) pair in [0, 1]")
    absent = [f for f in fields if f not in records.columns]
    if absent:
        raise InputError(f"identifier column(s) {absent} not found")
    if "record_id" in records.columns:
        ids = records["record_id"].astype(str)
    elif {"entity_id", "source_record_id"} <= set(records.columns):
        ids = records["entity_id"].astype(str) + ":" + records["source_record_id"].astype(str)
    else:
        raise InputError("records need 'record_id' or 'entity_id' and 'source_record_id'")
    if ids.duplicated().any():
        raise InputError("record ids must be unique for linkage",
                         [])
    df = pd.DataFrame({"unique_id": ids.to_numpy()})
    from .keys import normalise_date, normalise_name

    for f in fields:
        if "date" in f:
            df[f] = [normalise_date(v) or None for v in records[f]]
        else:
            df[f] = [normalise_name(v) or None for v in records[f]]
    comparisons = [cl.JaroWinklerAtThresholds(f, [0.95, 0.88]) if "name" in f else cl.ExactMatch(f)
                   for f in fields]
    rules = [block_on(*b) for b in blocking]
    settings = SettingsCreator(link_type="dedupe_only", comparisons=comparisons,
                               blocking_rules_to_generate_predictions=rules,
                               retain_intermediate_calculation_columns=False)
    splink_log = logging.getLogger("splink")
    old = splink_log.level
    splink_log.setLevel(logging.ERROR)  # its messages may quote records
    try:
        db = db_api if db_api is not None else DuckDBAPI()
        linker = Linker(db.register(df), settings, log_level=logging.ERROR)
        linker.training.estimate_probability_two_random_records_match(
            [block_on(*fields)], recall=0.8)
        linker.training.estimate_u_using_random_sampling(max_pairs=max(1e5, 20 * len(df)),
                                                         seed=seed)
        for b in blocking:
            linker.training.estimate_parameters_using_expectation_maximisation(block_on(*b))
        pred = linker.inference.predict(threshold_match_probability=min_probability)
        p = pred.as_pandas_dataframe()
    finally:
        splink_log.setLevel(old)
    keep = ["unique_id_l", "unique_id_r", "match_probability", "match_weight",
            *[c for c in p.columns if c.startswith("gamma_")]]
    pairs = p[keep].rename(columns={"unique_id_l": "record_id_l", "unique_id_r": "record_id_r"})
    return ProbabilisticLinkage(pairs.reset_index(drop=True), pd.Index(df["unique_id"]), threshold,
                                tuple(review_band))


def sensitivity(linkage: ProbabilisticLinkage, records, thresholds: Sequence[float] = (
        0.5, 0.7, 0.8, 0.9, 0.95, 0.99), by: Sequence[str] = (), **fit_kwargs: Any) -> pd.DataFrame:
    """N-hat across match thresholds: ``threshold, persons, n_hat, lower, upper, model``.

    ``records`` are the pseudonymised :class:`~tipstat.ictip.Records` of the same record ids;
    each threshold's person map goes through :func:`tipstat.ictip.capture_histories` and
    :func:`tipstat.models.stratified.fit_stratified` (``n_boot=0`` unless given).
    """
    import warnings

    from ..errors import TipstatWarning
    from ..ictip.strata import capture_histories
    from ..models.stratified import fit_stratified

    fit_kwargs.setdefault("n_boot", 0)
    rows = []
    rid = records.used["record_id"]
    for t in thresholds:
        pm = linkage.person_map(t)
        missing = ~rid.isin(pm.index)
        if missing.any():
            raise InputError(f"{int(missing.sum())} used record(s) were not in the linkage input")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TipstatWarning)
            h = capture_histories(records, by=list(by), person_map=pm)
            est = fit_stratified(h, **fit_kwargs)
        rows.append({"threshold": t, "persons": int(h.n_observed), "n_hat": est.n_hat,
                     "lower": est.ci[0], "upper": est.ci[1], "model": est.model})
    return pd.DataFrame(rows)
