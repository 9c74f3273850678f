"""The one execution layer: run a function over many items serially, on local cores, or on a
Dask cluster, with the same results whatever the backend.

Reproducibility: when a ``seed`` is given, item ``i`` receives its own
:class:`numpy.random.SeedSequence`, the ``i``-th child of ``SeedSequence(seed).spawn(n)``. The
stream an item sees therefore depends only on ``(seed, i)``, never on which worker runs it, in
what order, or how items are grouped into chunks, so ``serial``, ``loky`` and ``dask`` give
identical results.

Work is sent in chunks (a few per worker) so that the per-task overhead of a process pool or a
scheduler (~1 ms) is paid per chunk, not per item.

Examples
--------
>>> from tipstat import parallel
>>> import numpy as np
>>> def draw(item, ss):
...     return item + np.random.default_rng(ss).integers(100)
>>> a = parallel.map(draw, range(4), seed=1)
>>> a == parallel.map(draw, range(4), seed=1, backend="loky", n_jobs=2)
True
"""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ._checks import DEFAULT_SEED
from .errors import InputError

__all__ = ["BACKENDS", "default_n_jobs", "free_cores", "generator", "map", "one_blas_thread",
           "prestart", "seed_sequence", "spawn_seeds"]

BACKENDS = ("auto", "serial", "loky", "dask")


def default_n_jobs() -> int:
    """Number of local cores this process may use (respects CPU affinity where available)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def free_cores() -> int:
    """Local cores not busy with other work: :func:`default_n_jobs` less the one-minute load
    average, counting this process as not busy (at least 1).

    On a shared machine the load of other jobs takes cores that worker processes would wait
    for: a worker then only adds its start-up (~2 s of imports) to the work. Speed only: the
    results of :func:`map` do not depend on where items run.

    Examples
    --------
    >>> from tipstat.parallel import default_n_jobs, free_cores
    >>> 1 <= free_cores() <= default_n_jobs()
    True
    """
    cores = default_n_jobs()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - no load average (Windows)
        return cores
    return max(1, min(cores, round(cores - load + 1.0)))


def _has_joblib() -> bool:
    try:
        import joblib  # noqa: F401
    except ImportError:  # pragma: no cover - joblib comes with the 'parallel' extra
        return False
    return True


def one_blas_thread() -> contextlib.AbstractContextManager:
    """Context manager limiting BLAS to one thread while it is open (the one limiter of the
    package; threadpoolctl comes with PyMC, and without it this does nothing).

    The estimators' matrix products are small (a model's cells times its columns, a stack of
    such fits, a model's importance draws): BLAS threads only add hand-offs, which on a busy
    2-core machine made them 2-10x slower (UK_6's 32,768-model search: 2.2 s of CPU with one
    thread, 4.9 s with two). Worker processes of :func:`map` already run one thread each.

    Examples
    --------
    >>> import numpy as np
    >>> from tipstat.parallel import one_blas_thread
    >>> with one_blas_thread():
    ...     float(np.ones((3, 3)) @ np.ones(3) @ np.ones(3))
    9.0
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with PyMC
        return contextlib.nullcontext()
    try:  # SciPy's own BLAS too (its wheels bundle one): loaded before the scan
        import scipy.linalg  # noqa: F401
    except ImportError:  # pragma: no cover - SciPy is a dependency
        pass
    # finding the loaded libraries costs ~0.5-6 ms a call: done again only after an import
    # (which is how a new BLAS gets loaded)
    if _BLAS[0] is None or _BLAS[1] != len(sys.modules):
        _BLAS[:] = [ThreadpoolController(), len(sys.modules)]
    return _BLAS[0].limit(limits=1, user_api="blas")


_BLAS: list = [None, -1]  # the threadpoolctl controller and len(sys.modules) when it was made


def seed_sequence(seed: int | np.random.SeedSequence | None = DEFAULT_SEED,
                  *key: int) -> np.random.SeedSequence:
    """The one seeding scheme of the package: ``numpy.random.SeedSequence(seed)``, or
    ``SeedSequence([seed, *key])`` for a stream derived from the seed and an integer key.

    Every random step builds its generator from this (independent streams are its children,
    ``seed_sequence(seed).spawn(n)``), so a seed names the same numbers on every machine and
    backend. ``numpy.random.default_rng(seed)`` is ``default_rng(seed_sequence(seed))``: code
    moved onto it draws the same numbers as before. ``None`` means
    :data:`tipstat.models.DEFAULT_SEED` (2024): no estimate is random unless a seed says so.

    Parameters
    ----------
    seed : int or numpy.random.SeedSequence or None
        A non-negative integer (or a SeedSequence, returned as it is when no ``key`` is given).
    *key : int
        Non-negative integers naming a derived stream.

    Raises
    ------
    InputError
        If ``seed`` or a key is not a non-negative integer (booleans and floats included).

    Examples
    --------
    >>> import numpy as np
    >>> from tipstat.parallel import seed_sequence
    >>> a = np.random.default_rng(seed_sequence(7)).integers(100, size=3)
    >>> bool((a == np.random.default_rng(7).integers(100, size=3)).all())
    True
    >>> seed_sequence(7, 1).entropy
    [7, 1]
    """
    if seed is None:
        seed = DEFAULT_SEED
    given = ([("key", k) for k in key] if isinstance(seed, np.random.SeedSequence)
             else [("seed", seed)] + [("key", k) for k in key])
    for name, value in given:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise InputError(f"{name}={value!r} must be a non-negative integer (e.g. the default "
                             f"seed {DEFAULT_SEED})")
    if isinstance(seed, np.random.SeedSequence):
        if not key:
            return seed
        entropy = seed.entropy
        head = list(entropy) if isinstance(entropy, list | tuple) else [int(entropy)]
    elif not key:
        return np.random.SeedSequence(int(seed))
    else:
        head = [int(seed)]
    return np.random.SeedSequence(head + [int(k) for k in key])


def generator(seed: int | np.random.SeedSequence | None = DEFAULT_SEED,
              *key: int) -> np.random.Generator:
    """``numpy.random.default_rng(seed_sequence(seed, *key))``: the generator of a random step.

    Examples
    --------
    >>> from tipstat.parallel import generator
    >>> int(generator(1).integers(10**6)) == int(generator(1).integers(10**6))
    True
    """
    return np.random.default_rng(seed_sequence(seed, *key))


def spawn_seeds(seed: int | np.random.SeedSequence | None, n: int) -> list[np.random.SeedSequence]:
    """``n`` independent child seeds of ``seed`` (``seed_sequence(seed).spawn(n)``)."""
    return seed_sequence(seed).spawn(n)


def _run_chunk(func: Callable, items: Sequence, seeds: Sequence | None) -> list:
    if seeds is None:
        return [func(x) for x in items]
    return [func(x, s) for x, s in zip(items, seeds, strict=True)]


def _import(modules: Sequence[str]) -> None:
    import importlib

    for m in modules:
        importlib.import_module(m)


def prestart(n_jobs: int, *modules: str) -> None:
    """Start the ``n_jobs - 1`` worker processes of a coming ``map(..., n_jobs=n_jobs,
    share=True)`` now and import ``modules`` in them, so that their start-up (~2 s) overlaps
    this process's work. Does nothing for one job or without joblib."""
    if n_jobs < 2 or not _has_joblib():
        return
    from joblib.executor import get_memmapping_executor

    executor = get_memmapping_executor(n_jobs - 1)
    for _ in range(n_jobs - 1):
        executor.submit(_import, modules)


#: per worker process: the function of the current shared map, unpickled once (``token`` ->
#: function), so that the state it keeps (e.g. caches of a fit's layout) lasts across chunks
_SHARED: dict = {}
_NEED = "tipstat.parallel: function not sent"  # a worker's answer to a chunk without payload


def _run_shared(token: str, payload: bytes | None, items: Sequence,
                seeds: Sequence | None) -> Any:
    func = _SHARED.get(token)
    if func is None:
        if payload is None:
            return _NEED
        import pickle

        _SHARED.clear()  # one shared map at a time per worker
        func = _SHARED[token] = pickle.loads(payload)
    return _run_chunk(func, items, seeds)


def _map_shared(func: Callable, items: list, seeds: list | None, jobs: int,
                chunks_per_worker: int, bar: _Progress) -> list:
    """The loky backend with this process working too: ``jobs - 1`` worker processes take
    chunks from the front while this process takes them from the back; at the end this process
    also takes back the chunks no worker has started. Each worker unpickles ``func`` once."""
    import pickle
    import uuid

    from joblib.executor import get_memmapping_executor
    from joblib.externals.loky.backend.reduction import dumps

    n = len(items)
    parts = _chunks(n, jobs * chunks_per_worker)
    workers = jobs - 1
    if workers < 1:
        return _run_chunk(func, items, seeds)
    executor = get_memmapping_executor(workers)  # joblib's reusable pool
    # loky's pickler (cloudpickle), as joblib sends functions: closures and __main__ ones too
    payload = bytes(dumps(func, protocol=pickle.HIGHEST_PROTOCOL))
    token = uuid.uuid4().hex
    done: list = [None] * len(parts)
    pending: dict[int, Any] = {}
    nxt, end = 0, len(parts)  # workers take parts[nxt], this process parts[end - 1]
    sent_payload = 0

    def sub(i: int, with_payload: bool) -> Any:
        lo, hi = parts[i]
        return executor.submit(_run_shared, token, payload if with_payload else None,
                               items[lo:hi], seeds[lo:hi] if seeds else None)

    def here(i: int) -> None:  # a chunk run in this process
        lo, hi = parts[i]
        done[i] = _run_chunk(func, items[lo:hi], seeds[lo:hi] if seeds else None)
        bar.advance(hi - lo)

    def collect(block: bool) -> None:
        for i in [i for i, f in pending.items() if block or f.done()]:
            res = pending.pop(i).result()
            if isinstance(res, str) and res == _NEED:  # a worker that has not had the payload
                pending[i] = sub(i, True)
                continue
            done[i] = res
            bar.advance(parts[i][1] - parts[i][0])

    while nxt < end:
        collect(False)
        while len(pending) < 2 * workers and nxt < end - 1:
            pending[nxt] = sub(nxt, sent_payload < workers)
            sent_payload += 1
            nxt += 1
        end -= 1
        here(end)
    # take back what no worker has started, then wait for the rest
    for i in sorted(pending, reverse=True):
        if pending[i].cancel():
            del pending[i]
            here(i)
    while pending:
        collect(True)
    return [x for part in done for x in part]


def _chunks(n: int, n_chunks: int) -> list[tuple[int, int]]:
    n_chunks = max(1, min(n, n_chunks))
    bounds = np.linspace(0, n, n_chunks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


class _Progress:
    """A rich progress bar (rich ships with PyMC), or nothing."""

    def __init__(self, total: int, enabled: bool, description: str):
        self.bar = None
        if enabled:
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.task = self.bar.add_task(description, total=total)
            self.bar.start()

    def advance(self, k: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, k)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def map(
    func: Callable[..., Any],
    items: Iterable,
    *,
    backend: str = "auto",
    n_jobs: int | None = None,
    client: Any = None,
    seed: int | np.random.SeedSequence | None = None,
    chunks_per_worker: int = 4,
    progress: bool = False,
    description: str = "working",
    share: bool = False,
) -> list:
    """Apply ``func`` to every item and return the results in item order.

    Parameters
    ----------
    func : callable
        ``func(item)``, or ``func(item, seed_sequence)`` when ``seed`` is given (build a generator
        with ``numpy.random.default_rng(seed_sequence)``). Must be picklable (a module-level
        function or a picklable object) for the ``loky`` and ``dask`` backends.
    items : iterable
    backend : {"auto", "serial", "loky", "dask"}
        ``"auto"``: ``"dask"`` if a ``client`` is given, ``"serial"`` if one job (or joblib is
        not installed), else ``"loky"`` (joblib's process pool on the local cores). joblib and
        dask come with ``pip install tipstat[parallel]``.
    n_jobs : int, optional
        Local worker processes (default: every core this process may use). Ignored by dask.
    client : dask.distributed.Client, optional
        Send the work to this Dask cluster.
    seed : int or SeedSequence, optional
        Root seed; item ``i`` gets ``SeedSequence(seed).spawn(n)[i]``.
    chunks_per_worker : int
        Chunks per worker (more chunks balance load, fewer reduce overhead).
    progress : bool
        Show a progress bar.
    share : bool
        With the ``loky`` backend, this process works too, beside ``n_jobs - 1`` worker
        processes: the workers take chunks from the front, this process from the back, so no
        core waits while work remains, and one worker fewer is started (each costs ~2 s of
        imports). For long runs of costly items on few cores.

    Returns
    -------
    list
        ``[func(items[0], ...), func(items[1], ...), ...]``.
    """
    if backend not in BACKENDS:
        raise InputError(f"backend={backend!r} is not one of {BACKENDS}")
    items = list(items)
    n = len(items)
    seeds = spawn_seeds(seed, n) if seed is not None else None
    if backend == "auto":
        if client is not None:
            backend = "dask"
        else:
            jobs = n_jobs if n_jobs is not None else default_n_jobs()
            backend = "serial" if jobs <= 1 or n <= 1 or not _has_joblib() else "loky"
    if backend == "dask" and client is None:
        raise InputError("backend='dask' needs a client=dask.distributed.Client(...)")
    if n_jobs is not None and n_jobs < 1:
        raise InputError(f"n_jobs={n_jobs!r} must be a positive number of workers")
    bar = _Progress(n, progress, description)
    try:
        if backend == "serial" or n == 0:
            out = []
            step = max(1, n // 100)
            for lo, hi in _chunks(n, math.ceil(n / step) if n else 1):
                out.extend(_run_chunk(func, items[lo:hi], seeds[lo:hi] if seeds else None))
                bar.advance(hi - lo)
            return out
        if backend == "loky":
            from joblib import Parallel, delayed

            jobs = n_jobs if n_jobs is not None else default_n_jobs()
            if share:
                return _map_shared(func, items, seeds, jobs, chunks_per_worker, bar)
            parts = _chunks(n, jobs * chunks_per_worker)
            runner = Parallel(n_jobs=jobs, backend="loky", return_as="generator")
            results: list = []
            gen = runner(delayed(_run_chunk)(func, items[lo:hi], seeds[lo:hi] if seeds else None)
                         for lo, hi in parts)
            for (lo, hi), res in zip(parts, gen, strict=True):
                results.extend(res)
                bar.advance(hi - lo)
            return results
        # dask
        from dask.distributed import as_completed

        workers = max(1, len(client.scheduler_info().get("workers", {})) or 1)
        parts = _chunks(n, workers * chunks_per_worker)
        futures = [client.submit(_run_chunk, func, items[lo:hi], seeds[lo:hi] if seeds else None,
                                 pure=False) for lo, hi in parts]
        index = {f.key: i for i, f in enumerate(futures)}
        done: list = [None] * len(parts)
        for fut in as_completed(futures):
            i = index[fut.key]
            done[i] = fut.result()
            lo, hi = parts[i]
            bar.advance(hi - lo)
        return [x for part in done for x in part]
    finally:
        bar.close()

