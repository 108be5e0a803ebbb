"""An Optuna sweeper for Hydra that several processes and machines can share safely.

Select it with ``override /hydra/sweeper: xslicq_optuna`` (``conf/hydra/sweeper/``); the
search configs in ``conf/hparams_search/`` do. It reads the configuration of Hydra's own
Optuna sweeper (``sampler``, ``direction``, ``storage``, ``study_name``, ``n_trials``,
``n_jobs``, ``params``, ``max_failure_rate``) and uses its parameter parsing, and changes
what a long, shared search needs:

* ``n_trials`` is the size of the *study*, not of one process's share: a worker asks for
  a trial only while the study holds fewer, under a lock (a PostgreSQL advisory lock, a
  file lock beside a SQLite file), so any number of workers on one storage together run
  exactly ``n_trials`` trials, each with its own number. A study is resumed by starting
  the same command again.
* Heartbeats: every running trial records one every ``heartbeat_interval`` seconds. A
  worker that dies (SIGKILL, a lost machine) leaves trials that the next worker to ask
  marks FAIL, with the reason, once ``grace_period`` has passed without a heartbeat. A
  worker that finds no trial left to run waits for the trials still running elsewhere
  (failing those of dead workers) before it writes the study's results, so the last
  worker standing finishes the study.
* A failing trial never stops the sweep and never stays RUNNING: a job that raises,
  returns NaN or the wrong number of values, or whose overrides do not compose, is told
  FAIL with the reason in its ``fail_reason`` user attribute; ``optuna.TrialPruned``
  raised by a job marks it PRUNED. An interrupted worker (Ctrl-C) marks its running
  trials FAIL before it exits. ``max_failure_rate`` (default 1: never) stops a worker
  whose own trials fail more often than that, after ``n_jobs`` or more trials.
* Search parameters that the composed configuration does not have (``loss.weight_freq``
  with ``loss=mse``) are left out of the search with a warning instead of failing every
  trial; parameters prefixed with ``+`` or ``++`` are exempt.
* A job may return ``{"values": [...], "attrs": {...}}``: the values are the objectives and
  the attributes are stored with the trial (its details: what was built, other scores).
* Each job's folder is ``<sweep dir>/<trial number>`` (the job number is the trial number),
  stored with the trial as the ``output_dir`` attribute.
* A seeded sampler is reseeded for every trial from its seed and the trial's number, so
  workers sharing a study never draw the same points (each would otherwise repeat the
  same random sequence) and a study's draws do not depend on which worker ran what.

* The study is named ``<study_name>-<digest>``: 8 hex digits of SHA-256 over the search
  space (each parameter's distribution, the values fixed on the command line for
  parameters of ``params``, and the directions), :func:`search_space`. The same command
  resumes its study; another search space opens a new study beside it instead of running 0
  trials in the old one and reporting its results. The space is stored with the study (the
  ``search_space`` user attribute), and a study of that name holding another space is refused.
  :func:`latest_study_name` finds the study of a base name in a storage.
* The storage's tables are created by one worker at a time (a PostgreSQL advisory lock, the
  file lock beside a SQLite file): workers started together on a fresh database raced to
  create them and one died (``UniqueViolation`` on ``CREATE TYPE studydirection``). A storage
  that cannot be opened (malformed URL, unreachable server, read-only database) is one
  :class:`SweepStorageError` naming the storage (its password masked), which the command
  line prints as one ``error:`` line with exit status 2.

The SQLite default needs no server; a ``postgresql://user@host:port/db`` URL shares one
study between workers on several machines.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import re
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from .checks import check_positive_int
from .errors import SweepStorageError

log = logging.getLogger(__name__)

__all__ = [
    "SPACE_ATTR",
    "StudySweeper",
    "SweepStorageError",
    "latest_study_name",
    "make_storage",
    "open_study",
    "search_space",
    "study_lock",
]

_ABSENT = object()

SPACE_ATTR = "search_space"
"""The study user attribute that holds the search space (:func:`search_space`'s JSON)."""

CONNECT_TIMEOUT_S = 30
"""Seconds a PostgreSQL connection may take before the storage counts as unreachable."""

_SCHEMA_LOCK_KEY = int.from_bytes(hashlib.sha1(b"xslicq optuna schema").digest()[:8], "big") - (
    1 << 63
)  # the advisory lock of the schema creation (a signed 64-bit key)


def shown_url(url) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", str(url))


def _reason_of(err: BaseException) -> str:
    """A database error's own message on one line (SQLAlchemy's without its SQL and links;
    for Optuna's ``StorageInternalError``, that of the database error behind it)."""
    if isinstance(err, optuna.exceptions.StorageInternalError) and err.__cause__ is not None:
        err = err.__cause__
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err) or type(err).__name__
    return " ".join(text.split())


@contextlib.contextmanager
def _file_lock(database: str) -> Iterator[None]:
    """``flock`` on ``<database>.lock``, the file beside a SQLite database that every
    worker on it locks (:func:`_schema_lock`, :func:`study_lock`)."""
    with open(str(Path(database).expanduser()) + ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _advisory_lock(conn, key: int) -> Iterator[None]:
    """A PostgreSQL session advisory lock ``key`` held on the connection ``conn``."""
    import sqlalchemy

    conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
    try:
        yield
    finally:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})


@contextlib.contextmanager
def _schema_lock(url: str, engine_kwargs: dict) -> Iterator[None]:
    """Hold a lock, across processes and machines, while Optuna creates the tables of
    ``url``: a PostgreSQL advisory lock, ``flock`` on the ``.lock`` file beside a SQLite file
    (the one :func:`study_lock` uses), nothing for other databases."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if not path or path == ":memory:":
            yield
            return
        with _file_lock(path):
            yield
        return
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        with engine.connect() as conn, _advisory_lock(conn, _SCHEMA_LOCK_KEY):
            yield
    finally:
        engine.dispose()


def make_storage(
    url: str | None, heartbeat_interval: int | None = 10, grace_period: int | None = None
):
    """An Optuna storage for ``url`` (``None``: in memory) with heartbeats enabled.

    SQLite files get a generous lock timeout so that several local workers can share one;
    PostgreSQL connections time out after :data:`CONNECT_TIMEOUT_S`. The tables are created
    under a lock (:func:`_schema_lock`), so workers started at the same instant on a fresh
    database do not race to create them.

    Raises:
        SweepStorageError: ``url`` is not a database URL, or the storage cannot be opened
            (no such driver, server unreachable, a folder or database that cannot be
            written); the message names the storage and the reason.
    """
    if url is None:
        return None
    if not isinstance(url, str) or "://" not in url:
        raise SweepStorageError(
            f"hydra.sweeper.storage must be a database URL such as "
            f"sqlite:///path/study.sqlite or postgresql://user@host:5432/db, "
            f"got {shown_url(url)!r}"
        )
    import sqlalchemy.exc

    engine_kwargs: dict = {}
    try:
        if url.startswith("sqlite"):
            engine_kwargs = {"connect_args": {"timeout": 120}}
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        else:
            engine_kwargs = {"pool_pre_ping": True}
            if url.startswith("postgresql"):
                engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        with _schema_lock(url, engine_kwargs), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
            )
    except (
        sqlalchemy.exc.SQLAlchemyError,
        optuna.exceptions.StorageInternalError,
        OSError,
        ImportError,
        ValueError,
    ) as err:
        raise SweepStorageError(
            f"cannot open the sweep storage {shown_url(url)}: {_reason_of(err)}"
        ) from err


def search_space(distributions: Mapping, fixed: Mapping, directions: Sequence[str]) -> str:
    """The search space as canonical JSON: each parameter's distribution
    (``optuna.distributions.distribution_to_json``), the fixed values of search parameters
    and the directions. Its digest names the study (:meth:`StudySweeper.sweep`)."""
    space = {
        "directions": list(directions),
        "params": {
            k: json.loads(optuna.distributions.distribution_to_json(d))
            for k, d in sorted(distributions.items())
        },
        "fixed": {k: str(v) for k, v in sorted(fixed.items())},
    }
    return json.dumps(space, sort_keys=True, separators=(",", ":"))


def space_digest(space: str) -> str:
    """8 hex digits of SHA-256 of a :func:`search_space` JSON."""
    return hashlib.sha256(space.encode()).hexdigest()[:8]


def open_study(
    storage, name: str | None, space: str, sampler=None, directions: Sequence[str] = ("maximize",)
) -> optuna.Study:
    """Create or load the study ``name`` on ``storage`` (under :func:`study_lock`) and store
    ``space`` with it (:data:`SPACE_ATTR`).

    Raises:
        SweepStorageError: the study holds another search space, or the storage cannot be
            written (a read-only database); the message names the storage.
    """
    import sqlalchemy.exc

    where = shown_url(getattr(storage, "url", "in memory"))
    try:
        with study_lock(storage, name or ""):
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                sampler=sampler,
                directions=list(directions),
                load_if_exists=True,
            )
            stored = study.user_attrs.get(SPACE_ATTR)
            if stored is None:
                study.set_user_attr(SPACE_ATTR, space)
    except (
        sqlalchemy.exc.SQLAlchemyError,
        optuna.exceptions.StorageInternalError,
        OSError,
    ) as err:
        raise SweepStorageError(
            f"cannot use the sweep storage {where} for study {name!r}: {_reason_of(err)}"
        ) from err
    if stored is not None and stored != space:
        raise SweepStorageError(
            f"study {name!r} in {where} holds another search space ({stored}), not {space}; "
            "give the sweep another hydra.sweeper.study_name"
        )
    return study


def latest_study_name(storage, base: str) -> str | None:
    """The name of the newest study named ``<base>-<8 hex digits>`` (a sweep's study of the
    search ``base``, :meth:`StudySweeper.sweep`) in ``storage`` (a URL or an Optuna storage);
    ``None`` when there is none."""
    pattern = re.compile(re.escape(base) + r"-[0-9a-f]{8}")
    found = [
        s
        for s in optuna.get_all_study_summaries(storage=storage)
        if pattern.fullmatch(s.study_name)
    ]
    return max(found, key=lambda s: s._study_id).study_name if found else None


@contextlib.contextmanager
def study_lock(storage, study_name: str) -> Iterator[None]:
    """Hold a lock that every worker of ``study_name`` on ``storage`` respects.

    PostgreSQL: a session advisory lock keyed by the study name; SQLite: ``flock`` on
    ``<database>.lock``; in memory: nothing to share, no lock. Other databases are not
    locked (a warning says so): workers may then run a few trials more than asked.
    """
    url = getattr(storage, "url", None)
    if url is None:
        yield
        return
    if url.startswith("sqlite"):
        with _file_lock(url.split(":///", 1)[-1]):
            yield
        return
    if url.startswith("postgresql"):
        key = int.from_bytes(hashlib.sha1(study_name.encode()).digest()[:8], "big", signed=True)
        with storage.engine.connect() as conn, _advisory_lock(conn, key):
            yield
        return
    warnings.warn(
        f"no lock for {url.split(':', 1)[0]} storages: workers sharing the study may "
        "together run a few more trials than n_trials",
        stacklevel=3,
    )
    yield


def _record_heartbeats(storage, trials: Sequence[optuna.trial.Trial]) -> None:
    for trial in trials:
        storage.record_heartbeat(trial._trial_id)


class _Heartbeat:
    """Records a heartbeat for every trial in ``trials`` every ``interval`` seconds."""

    def __init__(self, storage, trials: Sequence[optuna.trial.Trial], interval: int):
        self.storage, self.trials, self.interval = storage, trials, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="optuna-heartbeat")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                _record_heartbeats(self.storage, self.trials)
            except Exception as err:  # noqa: BLE001 - a lost beat is retried next time
                log.warning("heartbeat not recorded: %s", err)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _sampler_rngs(sampler) -> list:
    """The ``numpy`` random states a sampler (and the samplers inside it) draws from."""
    found, todo = [], [sampler]
    while todo:
        obj = todo.pop()
        if isinstance(getattr(obj, "_rng", None), np.random.RandomState):
            found.append(obj)
        todo += [v for k, v in vars(obj).items() if isinstance(v, optuna.samplers.BaseSampler)]
    return found


def _reseed(sampler, base: int | None, number: int) -> None:
    """Reseed ``sampler`` for trial ``number`` from ``base`` (None: leave it as it is)."""
    if base is None:
        return
    for k, obj in enumerate(_sampler_rngs(sampler)):
        obj._rng = np.random.RandomState((base + 7919 * number + k) % 2**32)


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:2000]


class StudySweeper(Sweeper):
    """Hydra sweeper on an Optuna study shared by any number of workers (see the module)."""

    def __init__(
        self,
        sampler: Any = None,
        direction: Any = "maximize",
        storage: str | None = None,
        study_name: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        max_failure_rate: float = 1.0,
        params: Any = None,
        heartbeat_interval: int | None = 10,
        grace_period: int | None = None,
        search_space: Any = None,
        custom_search_space: Any = None,
    ):
        if search_space is not None or custom_search_space is not None:
            raise ValueError(
                "hydra.sweeper.search_space and custom_search_space are not "
                "supported by this sweeper: use hydra.sweeper.params"
            )
        check_positive_int(n_trials, "hydra.sweeper.n_trials")
        check_positive_int(n_jobs, "hydra.sweeper.n_jobs")
        if not 0.0 <= float(max_failure_rate) <= 1.0:
            raise ValueError(
                f"hydra.sweeper.max_failure_rate must be in [0, 1], got {max_failure_rate!r}"
            )
        if heartbeat_interval is not None and heartbeat_interval < 1:
            raise ValueError(
                f"hydra.sweeper.heartbeat_interval must be >= 1 s (or null), got "
                f"{heartbeat_interval!r}"
            )
        self.sampler = sampler
        # a seeded sampler's first draw is its base seed, the same in every worker
        rngs = _sampler_rngs(sampler) if sampler is not None else []
        self._seed_base = int(rngs[0]._rng.randint(2**31)) if rngs else None
        self.directions = [direction] if isinstance(direction, str) else list(direction)
        bad = [d for d in self.directions if d not in ("maximize", "minimize")]
        if bad or not self.directions:
            raise ValueError(
                f"hydra.sweeper.direction must be maximize, minimize or a list of "
                f"them, got {direction!r}"
            )
        self.storage_url, self.study_name = storage, study_name
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.max_failure_rate = float(max_failure_rate)
        self.params = params
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    # ---------------------------------------------------------------- search space
    def _search_space(self, arguments: list[str]):
        from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

        params = [f"{k!s}={v}" for k, v in (self.params or {}).items()] + list(arguments)
        distributions, fixed = create_params_from_overrides(params)
        for name in fixed:
            distributions.pop(name, None)
        for name in list(distributions):
            key = name.lstrip("+")
            if (
                key == name
                and OmegaConf.select(self.config, key, default=_ABSENT, throw_on_missing=False)
                is _ABSENT
            ):
                log.warning(
                    "search parameter %s does not exist in this configuration; it is "
                    "left out of the search",
                    name,
                )
                del distributions[name]
        if not distributions:
            raise ValueError(
                "the search space is empty: hydra.sweeper.params names no "
                "parameter of this configuration"
            )
        return distributions, fixed

    # ------------------------------------------------------------------- trials
    def _fail_stale(self, study: optuna.Study, storage) -> None:
        """Fail (with the reason) the running trials whose worker stopped sending heartbeats.
        Call under the study lock."""
        if storage is None or not storage.is_heartbeat_enabled():
            return
        grace = self.grace_period or 2 * self.heartbeat_interval
        # optuna 2.10's own fail_stale_trials, with a reason recorded before the state change
        for trial_id in storage._get_stale_trial_ids(study._study_id):
            storage.set_trial_user_attr(
                trial_id, "fail_reason", f"no heartbeat for more than {grace} s: its worker stopped"
            )
            if storage.set_trial_state(trial_id, optuna.trial.TrialState.FAIL):
                log.warning(
                    "trial %d failed: no heartbeat for more than %d s (its worker stopped)",
                    storage.get_trial_number_from_id(trial_id),
                    grace,
                )

    def _ask(self, study: optuna.Study, storage, count: int) -> list[optuna.trial.Trial]:
        """Up to ``count`` new trials, never more than ``n_trials`` in the whole study."""
        with study_lock(storage, study.study_name):
            self._fail_stale(study, storage)
            existing = len(study.get_trials(deepcopy=False))
            trials = [study.ask() for _ in range(min(count, self.n_trials - existing))]
            if trials and storage is not None and storage.is_heartbeat_enabled():
                _record_heartbeats(storage, trials)  # stale-detectable from now on
        return trials

    def _configure(self, trial, distributions, fixed) -> tuple[str, ...]:
        _reseed(self.sampler, self._seed_base, trial.number)
        for name, distribution in distributions.items():
            trial._suggest(name, distribution)
        for name, value in fixed.items():
            trial.set_user_attr(name, value)
        return tuple(f"{k}={v}" for k, v in {**trial.params, **fixed}.items())

    def _tell(self, study, trial, ret) -> bool:
        """Record one job's outcome; returns True if the trial failed."""
        try:
            result = ret.return_value  # raises the job's exception, if any
            if isinstance(result, Mapping) and "values" in result:
                for key, value in (result.get("attrs") or {}).items():
                    trial.set_user_attr(key, value)
                result = result["values"]
            if isinstance(result, (list, tuple)):
                values = [float(v) for v in result]
            else:
                values = [float(result)]
            if len(values) != len(self.directions):
                raise ValueError(
                    f"the job returned {len(values)} values for {len(self.directions)} objectives"
                )
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"the job returned non-finite values {values}")
        except optuna.TrialPruned as err:
            trial.set_user_attr("prune_reason", _reason(err))
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            log.info("trial %d pruned: %s", trial.number, err)
            return False
        except Exception as err:  # noqa: BLE001 - any failure fails this trial only
            self._fail(study, [trial], _reason(err))
            return True
        study.tell(trial, values if len(values) > 1 else values[0])
        log.info("trial %d: %s", trial.number, values)
        return False

    @staticmethod
    def _fail(study, trials, reason: str) -> None:
        for trial in trials:
            trial.set_user_attr("fail_reason", reason)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            log.warning("trial %d failed: %s", trial.number, reason)

    # -------------------------------------------------------------------- sweep
    def study_name_of(self, distributions: Mapping, fixed: Mapping) -> tuple[str | None, str]:
        """``(study name, search space JSON)``: ``<study_name>-<digest of the space>``
        (``None`` stays: a random name); see the module docstring."""
        pinned = {k: v for k, v in fixed.items() if k in (self.params or {})}
        space = search_space(distributions, pinned, self.directions)
        if self.study_name is None:
            return None, space
        return f"{self.study_name}-{space_digest(space)}", space

    def sweep(self, arguments: list[str]) -> None:
        assert self.config is not None and self.launcher is not None
        distributions, fixed = self._search_space(arguments)
        name, space = self.study_name_of(distributions, fixed)
        storage = make_storage(self.storage_url, self.heartbeat_interval, self.grace_period)
        study = open_study(storage, name, space, self.sampler, self.directions)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info(
            "study %r (%s), %s, %d trials in all, parameters %s",
            study.study_name,
            shown_url(self.storage_url) if self.storage_url else "in memory",
            self.directions,
            self.n_trials,
            ", ".join(distributions),
        )
        done = failed = 0
        while True:
            trials = self._ask(study, storage, self.n_jobs)
            if not trials:
                break
            try:
                overrides = [self._configure(t, distributions, fixed) for t in trials]
            except BaseException as err:  # e.g. a space that contradicts the stored trials
                self._fail(study, trials, _reason(err))
                raise
            for trial in trials:
                trial.set_user_attr("output_dir", str(sweep_dir / str(trial.number)))
            beat = (
                _Heartbeat(storage, trials, self.heartbeat_interval)
                if storage is not None and storage.is_heartbeat_enabled()
                else contextlib.nullcontext()
            )
            try:
                with beat:
                    returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
            except Exception as err:  # noqa: BLE001 - e.g. overrides that do not compose
                self._fail(study, trials, _reason(err))
                failed += len(trials)
                done += len(trials)
            except BaseException:
                self._fail(study, trials, "interrupted")
                raise
            else:
                for trial, ret in zip(trials, returns):
                    failed += self._tell(study, trial, ret)
                done += len(trials)
            if done >= self.n_jobs and failed / done > self.max_failure_rate:
                raise RuntimeError(
                    f"{failed} of this worker's {done} trials failed, more than "
                    f"max_failure_rate={self.max_failure_rate}; see the trials' "
                    "fail_reason"
                )
        self._wait_for_others(study, storage)
        self._write_results(study, sweep_dir)

    def _wait_for_others(self, study: optuna.Study, storage) -> None:
        """Wait until no trial of the study is running (trials of dead workers are failed
        once their heartbeats stop); without heartbeats there is no telling, so no wait."""
        if storage is None or not storage.is_heartbeat_enabled():
            return
        announced = False
        while True:
            with study_lock(storage, study.study_name):
                self._fail_stale(study, storage)
            running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if not running:
                return
            if not announced:
                log.info(
                    "waiting for trials %s, still running in other workers",
                    [t.number for t in running],
                )
                announced = True
            time.sleep(self.heartbeat_interval)

    def _write_results(self, study: optuna.Study, sweep_dir: Path) -> None:
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        counts = {}
        for trial in study.get_trials(deepcopy=False):
            counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
        results: dict = {
            "name": "optuna",
            "study_name": study.study_name,
            "directions": self.directions,
            "trials": counts,
        }
        if complete and len(self.directions) == 1:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial=best.number)
            log.info("best trial %d: %s = %s", best.number, best.params, best.value)
        elif complete:
            results["solutions"] = [
                {"trial": t.number, "params": t.params, "values": t.values}
                for t in study.best_trials
            ]
            log.info("%d Pareto-optimal trials", len(results["solutions"]))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
