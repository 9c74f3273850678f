"""The execution layer: same results for the same seed on every backend, in item order."""

from __future__ import annotations

import numpy as np
import pytest

import tipstat
from tipstat import parallel


def _draw(item, ss):
    rng = np.random.default_rng(ss)
    return (item, float(rng.normal()), int(rng.integers(1_000_000)))


def _square(x):
    return x * x


def test_seeded_results_do_not_depend_on_backend_or_chunking():
    items = list(range(23))
    serial = parallel.map(_draw, items, seed=42, backend="serial")
    assert [r[0] for r in serial] == items
    # different chunkings of the same items give the same draws
    assert parallel.map(_draw, items, seed=42, backend="serial", chunks_per_worker=7) == serial
    loky = parallel.map(_draw, items, seed=42, backend="loky", n_jobs=2)
    assert loky == serial
    # each item has its own stream: the draws are not all the same, and another seed differs
    assert len({r[2] for r in serial}) == len(items)
    assert parallel.map(_draw, items, seed=43, backend="serial") != serial


def test_shared_map_matches_serial():
    """``share=True``: this process works beside the workers, taking chunks from the back while
    the worker takes them from the front; results in item order, the same as serial, seeded
    or not, over more chunks than items and fewer."""
    items = list(range(31))
    serial = parallel.map(_draw, items, seed=9, backend="serial")
    for per in (1, 3, 40):
        assert parallel.map(_draw, items, seed=9, backend="loky", n_jobs=2, share=True,
                            chunks_per_worker=per) == serial
    assert parallel.map(_square, items, backend="loky", n_jobs=2, share=True) == [
        x * x for x in items]
    offset = 5  # a closure, as joblib sends them
    assert parallel.map(lambda x: x + offset, items, backend="loky", n_jobs=2, share=True) == [
        x + 5 for x in items]
    # one job: this process alone
    assert parallel.map(_square, [3], backend="loky", n_jobs=1, share=True) == [9]
    # joblib's own loky runs still work on the pool the shared map (re)used
    assert parallel.map(_draw, items, seed=9, backend="loky", n_jobs=2) == serial
    parallel.prestart(2, "tipstat.parallel")
    assert parallel.map(_draw, items, seed=9, backend="loky", n_jobs=2) == serial
    assert 1 <= parallel.free_cores() <= parallel.default_n_jobs()


def test_streams_are_seedsequence_children():
    out = parallel.map(_draw, [0, 1], seed=5, backend="serial")
    kids = np.random.SeedSequence(5).spawn(2)
    assert out[1][1] == float(np.random.default_rng(kids[1]).normal())


def test_dask_backend_matches_serial():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        items = list(range(17))
        dask_out = parallel.map(_draw, items, seed=9, client=client)
        assert dask_out == parallel.map(_draw, items, seed=9, backend="serial")
        assert parallel.map(_square, [1, 2, 3], backend="dask", client=client) == [1, 4, 9]


def test_unseeded_map_and_empty_input():
    assert parallel.map(_square, range(5), backend="serial") == [0, 1, 4, 9, 16]
    assert parallel.map(_square, [], backend="loky") == []
    assert parallel.map(_square, [3], n_jobs=1) == [9]


def test_bad_arguments_raise_input_errors():
    with pytest.raises(tipstat.InputError, match="backend"):
        parallel.map(_square, [1], backend="threads")
    with pytest.raises(tipstat.InputError, match="client"):
        parallel.map(_square, [1], backend="dask")
    with pytest.raises(tipstat.InputError, match="n_jobs"):
        parallel.map(_square, [1, 2], backend="loky", n_jobs=0)


def test_submodule_is_exported_lazily():
    assert tipstat.parallel is parallel


def test_progress_bar_does_not_change_results():
    items = list(range(9))
    assert parallel.map(_draw, items, seed=3, backend="serial", progress=True) == \
        parallel.map(_draw, items, seed=3, backend="serial")


def test_seed_sequence_is_the_one_seeding_scheme():
    """numpy's default_rng(seed) is default_rng(SeedSequence(seed)): moving a random step onto
    seed_sequence keeps its numbers; a key names a derived stream, None the default seed."""
    from tipstat.models import DEFAULT_SEED

    assert parallel.generator(7).normal(size=3).tolist() == \
        np.random.default_rng(7).normal(size=3).tolist()
    assert parallel.generator(7, 3).integers(10**9) == np.random.default_rng([7, 3]).integers(10**9)
    assert parallel.seed_sequence(None).entropy == DEFAULT_SEED
    ss = np.random.SeedSequence(5)
    assert parallel.seed_sequence(ss) is ss
    assert parallel.seed_sequence(ss, 2).entropy == [5, 2]
    for bad in (True, -1, 1.5, "1", [1]):
        with pytest.raises(tipstat.InputError, match="non-negative integer"):
            parallel.seed_sequence(bad)
    with pytest.raises(tipstat.InputError, match="key"):
        parallel.seed_sequence(1, -2)


def test_one_blas_thread_limits_blas_inside_only():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return {p["num_threads"] for p in threadpoolctl.threadpool_info()
                if p["user_api"] == "blas"}

    before = blas_threads()
    with parallel.one_blas_thread():
        assert blas_threads() <= {1}
    assert blas_threads() == before
