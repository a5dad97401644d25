"""Writing result files so that a failed run never leaves a partial file under the final name."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path in the folder of `final`; rename it to `final` if the block succeeds.

    The temporary name starts with ".partial-" and keeps the suffix of `final`, so writers
    that pick the format by suffix (SimpleITK) still work. If the block raises, the
    temporary file is deleted and `final` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".partial-{os.getpid()}-{final.name}")
    try:
        yield temporary
        os.replace(temporary, final)
    finally:
        if temporary.exists():
            temporary.unlink()
