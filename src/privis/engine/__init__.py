"""Running a protector over a dataset of any size (``docs/architecture.md``, ``engine``).

- :func:`protect`: stream a dataset spec (``folder:``, ``npz:``, built-in) or a ``Dataset`` through a
  protector into an output folder, batch by batch, with memory bounded by the batch size; reader and
  writer thread pools (``workers``); every output atomic, every finished item journalled in
  the owner-side run state (:mod:`privis.engine.state`, never in OUT); ``resume`` after any crash, with
  the fitted state the first run saved; one run per output folder at a time; ``engine="ray"`` for Ray Data.
- The ``ids`` contract: a protector that declares ``accepts_ids`` (``transform(images, labels=None, *, ids=None)``)
  receives ``(B,)`` int64 item ids and must derive item ``i``'s randomness from ``(random_state, ids[i])``
  only; others are seeded per aligned batch (see :mod:`privis.engine.core`).
"""

from privis.engine.core import RunSummary, ids_mode
from privis.engine.journal import JOURNAL_NAME, item_hash
from privis.engine.run import ENGINES, protect
from privis.engine.state import journal_path

__all__ = ["ENGINES", "JOURNAL_NAME", "RunSummary", "ids_mode", "item_hash", "journal_path", "protect"]
