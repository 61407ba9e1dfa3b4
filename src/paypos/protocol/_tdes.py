"""psec and pyemv build ``cryptography``'s TripleDES, which warns that it is deprecated
there (TDES is still what DUKPT, ISO 9564 and EMV CVN 10/18 name). Calls into them are
wrapped in `tdes_deprecation_silenced`, which hides exactly that warning.

``warnings.catch_warnings`` swaps the process-wide filter list, so concurrent uses from
the host's worker threads are serialised by a lock; the block inside is a few DES
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
