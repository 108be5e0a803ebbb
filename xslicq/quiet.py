"""Known third-party messages that say nothing about a run, filtered where they are made.

Each filter names the exact message and the module that emits it, for the versions pinned in
constraints.txt; a message of another text or from another place still shows. Installed by
:func:`xslicq.train.train` (idempotent: calling it again adds nothing).

* pytorch-lightning 2.6.6 with torch 2.14.1: Lightning's ``utilities/_pytree.py`` builds a
  ``LeafSpec``, which torch deprecates with a ``FutureWarning`` on every training run
  ("`isinstance(treespec, LeafSpec)` is deprecated ..."); nothing to change on our side.
* pytorch-lightning 2.6.6: two log lines of ``rank_zero_info`` that advertise its cloud
  services ("💡 Tip: For seamless cloud logging ..." when a Trainer is built without LitLogger,
  "💡 Tip: For seamless cloud uploads ..." with a ModelCheckpoint).
"""

from __future__ import annotations

import logging
import warnings

PYTREE_MESSAGE = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
PYTREE_MODULE = r"pytorch_lightning\.utilities\._pytree"
TIP_PREFIX = "💡 Tip: For seamless cloud "
# rank_zero_info logs through these (lightning_fabric's function, pytorch_lightning's logger)
TIP_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")


class _DropAdvertisement(logging.Filter):
    """Drops Lightning's cloud-service tips; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TIP_PREFIX)


_TIPS = _DropAdvertisement()


def quiet_third_party() -> None:
    """Install the filters of this module (see there)."""
    warnings.filterwarnings(
        "ignore", message=PYTREE_MESSAGE, category=FutureWarning, module=PYTREE_MODULE
    )
    for name in TIP_LOGGERS:
        logger = logging.getLogger(name)
        if _TIPS not in logger.filters:
            logger.addFilter(_TIPS)
