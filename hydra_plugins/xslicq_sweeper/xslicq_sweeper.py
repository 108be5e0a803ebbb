"""Hydra's handle on :class:`xslicq.sweeper.StudySweeper`.

Hydra only instantiates sweepers defined under ``hydra_plugins`` and imports every module
there at start-up, so this one is thin and imports Optuna only when a sweep is built.
"""

import sys

from hydra.plugins.sweeper import Sweeper


class XslicqOptunaSweeper(Sweeper):
    """Optuna sweeper shared by several workers; see :mod:`xslicq.sweeper`."""

    def __init__(self, **kwargs) -> None:
        from xslicq.sweeper import StudySweeper

        self.sweeper = StudySweeper(**kwargs)

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments):
        """Run the sweep; a storage that cannot be opened is one ``error:`` line, exit 2."""
        from xslicq.cli import error_line
        from xslicq.sweeper import SweepStorageError

        try:
            return self.sweeper.sweep(arguments)
        except SweepStorageError as err:
            print(error_line(err), file=sys.stderr)
            raise SystemExit(2) from None
