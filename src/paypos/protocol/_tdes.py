"""psec builds ``cryptography``'s TripleDES, which warns that it is deprecated
there (TDES is still what DUKPT, ISO 9564 and EMV CVN 10/18 name). Calls into it are
wrapped in `tdes_deprecation_silenced`, which hides exactly that warning (the host's
per-request crypto does not go through psec: see `_des`).

``warnings.catch_warnings`` swaps the process-wide filter list, so concurrent uses from
several threads are serialised by a lock; the block inside is a few DES
operations, far shorter than a request.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator

from cryptography.utils import CryptographyDeprecationWarning

_lock = threading.RLock()


@contextlib.contextmanager
def tdes_deprecation_silenced() -> Iterator[None]:
    with _lock, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TripleDES", category=CryptographyDeprecationWarning)
        yield
