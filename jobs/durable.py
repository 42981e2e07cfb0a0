"""Writing files that survive a crash or a power cut: the one helper the ledger and the result
cache share."""
from __future__ import annotations

import os
from pathlib import Path


def write_synced(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist yet) with `data`, flushed to the disk before returning."""
    with open(path, "xb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def fsync_directory(path: Path) -> None:
    """Make a rename inside `path` durable (POSIX); Windows cannot open directories for fsync."""
    if os.name == "nt":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the data files are synced already
    finally:
        os.close(fd)
