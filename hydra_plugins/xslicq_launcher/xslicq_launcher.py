"""Hydra's submitit launchers (hydra-submitit-launcher), made to keep a job in one folder and
to report what each job gave.

Changes to the plugin's launchers:

- The sweep folder is the one the submitting process chose. Each job is a new process that
  composes its config again, and ``${xslicq.run_dir:...}`` (a date, time and random id per
  process) would name a new sweep folder in every job; the launcher passes the resolved
  folder to every job as ``hydra.sweep.dir``.
- A requeued SLURM job (``SLURM_RESTART_COUNT`` > 0: requeued by submitit before the time
  limit, or by SLURM after a preemption) whose folder already holds
  ``checkpoints/last.ckpt`` continues that run: ``resume=<job folder>`` is added to its
  overrides, as ``python -m xslicq.train resume=<run folder>`` would.
- The submitting process logs one line per job once the jobs have ended: its number, its
  overrides, its result (``val/sdr_best = 3.142``, the value the task returned, named by
  the job's ``optimized_metric``; or ``failed: <error>``) and its run folder.
- submitit's local executor leaves an empty ``.submitit/%j`` folder beside the real
  ``.submitit/<job id>/`` logs (every job's controller creates the folder as configured,
  before the job id is substituted); it is removed once the jobs have ended.

Hydra imports every module under ``hydra_plugins`` at start-up; submitit is imported only
when a job runs.
"""

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, setup_globals
from omegaconf import OmegaConf, open_dict

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher

log = logging.getLogger(__name__)


def quote(value: str) -> str:
    """``value`` as a quoted Hydra override value (any character allowed)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def requeued() -> bool:
    """Whether this process is a SLURM job that has been requeued at least once."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


def _value(value) -> str:
    """A job's return value as the report shows it: numbers with 3 decimals (as training
    logs its ``optimized_metric``), a sequence of them (several objectives) as a list."""
    if isinstance(value, Mapping) and "values" in value:  # a sweep job's values and details
        value = value["values"]
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f"{value:.3f}"
    return repr(value)


def job_report(ret: JobReturn, number: int) -> str:
    """One line on a finished job: ``#<number> <overrides>: <result> in <run folder>``,
    where the result is ``<optimized_metric> = <value>`` (or ``result = <value>`` for a
    task without one), ``done`` when the task returned nothing, ``failed: <error>``."""
    overrides = " ".join(filter_overrides(ret.overrides or ()))
    if ret.status == JobStatus.COMPLETED:
        value = ret._return_value
        if value is None:
            result = "done"
        else:
            name = (ret.cfg.get("optimized_metric") if ret.cfg is not None else None) or "result"
            result = f"{name} = {_value(value)}"
    else:
        error = ret._return_value
        result = f"failed: {type(error).__name__}: {' '.join(str(error).split())}"
    folder = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg else None
    head = f"#{number} {overrides}" if overrides else f"#{number}"
    return f"{head}: {result}" + (f" in {folder}" if folder else "")


def remove_unused_folder(submitit_folder: str) -> None:
    """Remove ``submitit_folder`` with its ``%j`` (or ``%A``...) left in its name, when it is
    an empty folder: submitit's local controller creates it, every file goes into the
    folders named by job id."""
    if "%" not in Path(submitit_folder).name:
        return
    try:
        Path(submitit_folder).rmdir()  # only an empty folder: never a file someone wrote
    except OSError:
        pass  # absent (the SLURM executor never creates it) or not empty


class _KeepFolder:
    """Mixed into a submitit launcher: jobs write to the submitter's sweep folder and a
    requeued job resumes there."""

    def launch(self, job_overrides, initial_job_idx):
        sweep_dir = f"hydra.sweep.dir={quote(str(self.config.hydra.sweep.dir))}"
        job_overrides = [[*overrides, sweep_dir] for overrides in job_overrides]
        try:
            returns = super().launch(job_overrides, initial_job_idx)
        finally:
            remove_unused_folder(str(self.params["submitit_folder"]))
        for number, ret in enumerate(returns, start=initial_job_idx):
            log.info(job_report(ret, number))
        return returns

    def __call__(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state):
        if requeued():
            Singleton.set_state(singleton_state)
            setup_globals()
            config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(sweep_overrides)
            )
            with open_dict(config):
                config.hydra.job.num = job_num
            folder = Path(str(OmegaConf.select(config, job_dir_key))) / str(
                config.hydra.sweep.subdir
            )
            if (folder / "checkpoints" / "last.ckpt").is_file():
                kept = [o for o in sweep_overrides if not o.startswith("resume=")]
                sweep_overrides = [*kept, f"resume={quote(str(folder))}"]
        return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)


class XslicqLocalLauncher(_KeepFolder, LocalLauncher):
    """hydra-submitit-launcher's local launcher, keeping each job in its sweep folder."""


class XslicqSlurmLauncher(_KeepFolder, SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher, keeping each job in its sweep folder and
    resuming a requeued job from its ``checkpoints/last.ckpt``."""
