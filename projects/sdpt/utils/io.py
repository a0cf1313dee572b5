"""Files written whole or not at all.

A reader, or a crash at any moment, sees either the old file or the new one,
never a part: the data goes to a temporary file in the same directory, is
flushed to disk and renamed into place (``os.replace``, atomic on POSIX).
Checkpoints, ``last_checkpoint``, few-shot splits, metrics and experiment
results are all written this way.
"""
import io
import json
import os
import os.path as osp
import tempfile

import torch


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader (or a crash) sees either
    the old file or the new one, never a part."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=directory)
    try:
        # mkstemp creates the file private (0600); give it the mode any
        # new file gets here (0666 less the umask), as open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save(obj, path)``, atomically (checkpoints)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getvalue())


def atomic_write_json(obj, path: str, indent=1) -> None:
    """``json.dump(obj)`` to ``path``, atomically; ``indent=None`` writes it
    compact (large annotation files)."""
    atomic_write(path, json.dumps(obj, indent=indent).encode('utf-8'))


def read_json(path: str, default=None):
    """The JSON in ``path``, or ``default`` when there is no such file."""
    if not osp.isfile(path):
        return default
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def atomic_write_text(path: str, text: str) -> None:
    """``text`` (UTF-8) to ``path``, atomically."""
    atomic_write(path, text.encode('utf-8'))
