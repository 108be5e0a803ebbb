"""The console commands that ``pip install`` puts on PATH (pyproject's ``[project.scripts]``):
``xslicq-train ARGS`` is ``python -m xslicq.train ARGS``, and so on for every entry point.

Each command runs its module as ``__main__``, as ``python -m`` does (:func:`runpy.run_module`
with ``alter_sys``), rather than calling its ``main`` from outside: Hydra finds a
``@hydra.main``'s configs relative to the file of a function defined in ``__main__``
(``config_path="conf"``), but as a package resource (``pkg://conf``, which is not one)
for a function imported from a module. Run as ``__main__``, a command behaves exactly like
its ``python -m`` form: the same config folder, job name, run folders, exit status, and the
same way of starting processes (Lightning's DDP ranks, spawned workers).
"""

from __future__ import annotations

import runpy

COMMANDS = {  # console command -> the module that `python -m` runs
    "xslicq-train": "xslicq.train",
    "xslicq-evaluate": "xslicq.evaluate",
    "xslicq-oracle": "xslicq.oracle",
    "xslicq-separate": "xslicq.separate",
    "xslicq-stream": "xslicq.stream",
    "xslicq-export": "xslicq.export",
    "xslicq-cadenza": "xslicq.cadenza",
    "xslicq-synthetic": "xslicq.data.synthetic",
    "xslicq-postgres": "xslicq.postgres",
    "xslicq-quickstart": "xslicq.quickstart",
    "xslicq-transform-demo": "xslicq.transform_demo",
}


def run(module: str) -> None:
    """Run ``module`` (a package: its ``__main__``) as ``python -m <module>`` would, with
    this process's arguments; its ``sys.exit`` status is the command's."""
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def train() -> None:
    run(COMMANDS["xslicq-train"])


def evaluate() -> None:
    run(COMMANDS["xslicq-evaluate"])


def oracle() -> None:
    run(COMMANDS["xslicq-oracle"])


def separate() -> None:
    run(COMMANDS["xslicq-separate"])


def stream() -> None:
    run(COMMANDS["xslicq-stream"])


def export() -> None:
    run(COMMANDS["xslicq-export"])


def cadenza() -> None:
    run(COMMANDS["xslicq-cadenza"])


def synthetic() -> None:
    run(COMMANDS["xslicq-synthetic"])


def postgres() -> None:
    run(COMMANDS["xslicq-postgres"])


def quickstart() -> None:
    run(COMMANDS["xslicq-quickstart"])


def transform_demo() -> None:
    run(COMMANDS["xslicq-transform-demo"])
