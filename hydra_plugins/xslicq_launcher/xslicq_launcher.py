"""Hydra's submitit launchers (hydra-submitit-launcher), made to keep a job in one folder.

Two changes to the plugin's launchers, both about the job's folder:

- The sweep folder is the one the submitting process chose. Each job is a new process that
  composes its config again, and ``${xslicq.run_dir:...}`` (a date, time and random id per
  process) would name a new sweep folder in every job; the launcher passes the resolved
  folder to every job as ``hydra.sweep.dir``.
- A requeued SLURM job (``SLURM_RESTART_COUNT`` > 0: requeued by submitit before the time
  limit, or by SLURM after a preemption) whose folder already holds
  ``checkpoints/last.ckpt`` continues that run: ``resume=<job folder>`` is added to its
  overrides, as ``python -m xslicq.train resume=<run folder>`` would.

Hydra imports every module under ``hydra_plugins`` at start-up; submitit is imported only
when a job runs.
"""

import os
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import setup_globals
from omegaconf import OmegaConf, open_dict

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher


def quote(value: str) -> str:
    """``value`` as a quoted Hydra override value (any character allowed)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def requeued() -> bool:
    """Whether this process is a SLURM job that has been requeued at least once."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


class _KeepFolder:
    """Mixed into a submitit launcher: jobs write to the submitter's sweep folder and a
    requeued job resumes there."""

    def launch(self, job_overrides, initial_job_idx):
        sweep_dir = f"hydra.sweep.dir={quote(str(self.config.hydra.sweep.dir))}"
        job_overrides = [[*overrides, sweep_dir] for overrides in job_overrides]
        return super().launch(job_overrides, initial_job_idx)

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
