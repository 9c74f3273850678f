"""The sampling layer of the Bayesian estimators, without sampling: seeds, sampler choice and the
convergence summary on posterior draws of known behaviour (the MCMC runs themselves are tested
in test_bayes_loglinear.py and test_latent_class.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tipstat
from tipstat.models import sampling


def test_one_seed_gives_one_set_of_streams():
    a_sampler, a_draws = sampling.seeds(7)
    b_sampler, b_draws = sampling.seeds(7)
    runs_a = [sampling.run_seed(r) for r in a_sampler.spawn(3)]
    assert runs_a == [sampling.run_seed(r) for r in b_sampler.spawn(3)]
    assert len(set(runs_a)) == 3                         # re-runs get fresh seeds
    assert np.random.default_rng(a_draws).integers(10**9) == \
        np.random.default_rng(b_draws).integers(10**9)
    assert runs_a != [sampling.run_seed(r) for r in sampling.seeds(8)[0].spawn(3)]
    # None is the package's default seed, not a random one
    assert sampling.run_seed(sampling.seeds(None)[0].spawn(1)[0]) == \
        sampling.run_seed(sampling.seeds(tipstat.models.DEFAULT_SEED)[0].spawn(1)[0])
    with pytest.raises(tipstat.InputError, match="seed"):
        sampling.seeds(-3)


def test_sampler_names():
    assert sampling.resolve_sampler("pymc") == "pymc"
    assert sampling.resolve_sampler("nutpie") == "nutpie"
    assert sampling.resolve_sampler("auto") in ("pymc", "nutpie")
    for bad in ("numpyro", None, "PyMC"):
        with pytest.raises(tipstat.InputError, match="sampler"):
            sampling.resolve_sampler(bad)


def _idata(shift: float, chains: int = 4, draws: int = 1000, diverging: int = 0):
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(1)
    n = rng.normal(1000.0, 10.0, (chains, draws)) + shift * np.arange(chains)[:, None]
    div = np.zeros((chains, draws), dtype=bool)
    div.flat[:diverging] = True
    return az.from_dict(posterior={"N": n, "theta": rng.normal(size=(chains, draws))},
                        sample_stats={"diverging": div})


def test_convergence_names_and_values():
    """Independent normal draws: R-hat within 1.01 of 1 (4 chains x 1,000 draws: its sampling
    SD is ~0.001) and bulk ESS near the 4,000 draws (within 25%); chains shifted by 5 SDs
    each: R-hat far above 1.1. Divergences are counted."""
    good = sampling.convergence(_idata(0.0, diverging=3))
    assert set(good) == {"rhat", "ess_bulk", "ess_tail", "divergences"}
    assert abs(good["rhat"] - 1) < 0.01 and 3000 < good["ess_bulk"] < 5000
    assert good["divergences"] == 3 and isinstance(good["divergences"], int)
    bad = sampling.convergence(_idata(50.0))
    assert bad["rhat"] > 1.1
    one = sampling.convergence(_idata(0.0, chains=1))
    assert math.isnan(one["rhat"]) and one["ess_bulk"] > 500
    full = sampling.convergence(_idata(50.0), "N", ["theta"])
    assert full["max_rhat"] == pytest.approx(bad["rhat"]) and "summary" in full
    assert list(full["summary"].index) == ["N", "theta"]
