"""Prompt checkpoints and safe loading of mmengine checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7
calls ``torch.load`` without arguments: its own checkpoints (which carry a
``MessageHub`` state with ``HistoryBuffer`` objects and numpy arrays) then fail
to load, which breaks ``resume`` and ``load_from``. We keep the safe loader and
allow exactly the types an mmengine/mmdet checkpoint contains, through
mmengine's own extension point (``CheckpointLoader.register_scheme``) for local
files and URLs. A checkpoint with any other pickled object is refused with a
message; a user who trusts the file can set ``SDPT_TRUST_CHECKPOINTS=1`` to
load it with full unpickling. A truncated or corrupt file is reported as such
(``CorruptCheckpointError``) instead of torch's zip-reader error.
"""
import collections
import contextlib
import os
import pickle
import zipfile

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import (
    CheckpointLoader,
    load_from_http,
    load_from_local,
)

from .load_completion import mark_loaded_checkpoint

try:
    from numpy._core import multiarray
except ImportError:  # numpy < 2
    from numpy.core import multiarray

TRUST_ENV = 'SDPT_TRUST_CHECKPOINTS'


def _numpy_globals():
    types = [np.ndarray, np.dtype]
    types += [type(np.dtype(t)) for t in (np.float64, np.float32, np.float16,
                                          np.int64, np.int32, np.uint8,
                                          np.bool_)]
    # Pickles name these after the numpy that wrote them (numpy.core in 1.x,
    # numpy._core in 2.x): allow both spellings.
    for name in ('_reconstruct', 'scalar'):
        func = getattr(multiarray, name)
        types += [(func, f'numpy.core.multiarray.{name}'),
                  (func, f'numpy._core.multiarray.{name}')]
    return types


def _history_buffer_getattr(obj, name):
    """Stands in for ``getattr`` while unpickling.

    mmengine pickles a ``HistoryBuffer``'s statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. A general ``getattr`` would let a
    crafted file reach arbitrary objects, so only those lookups pass.
    """
    # The built-in statistics are registered lazily, on the first instance.
    allowed = {'min', 'max', 'current', 'mean',
               *HistoryBuffer._statistics_methods}
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


CHECKPOINT_GLOBALS = [
    HistoryBuffer, collections.OrderedDict, slice, *_numpy_globals(),
    (_history_buffer_getattr, 'builtins.getattr'),
    (_history_buffer_getattr, '__builtin__.getattr')
]


class UntrustedCheckpointError(RuntimeError):
    pass


class CorruptCheckpointError(RuntimeError):
    pass


def _is_corrupt(filename, err) -> bool:
    """Whether loading ``filename`` failed because the file is incomplete."""
    if not isinstance(filename, str) or not os.path.isfile(filename):
        return False
    if os.path.getsize(filename) == 0:
        return True
    if zipfile.is_zipfile(filename):  # torch's format since 1.6
        try:
            with zipfile.ZipFile(filename) as archive:
                return archive.testzip() is not None
        except (zipfile.BadZipFile, OSError, EOFError):
            return True
    # Not a complete zip: a truncated new-style file, or a legacy pickle.
    return isinstance(err, (EOFError, OSError)) or 'truncated' in str(
        err) or 'PytorchStreamReader' in str(err)


def _corrupt(filename):
    return CorruptCheckpointError(
        f'Checkpoint {filename} is truncated or corrupt '
        f'({os.path.getsize(filename)} bytes): a copy or download that did '
        f'not finish, or a run killed while writing it. Use an earlier '
        f'checkpoint (the work dir\'s last_checkpoint names the last '
        f'complete one) or copy / download the file again.')


def _safe(loader):

    def load(filename, map_location=None, **kwargs):
        # A prompt checkpoint's state dict carries its metadata, so that a
        # prompt-tuned detector completes it wherever it is loaded
        # (load_completion.py).
        return mark_loaded_checkpoint(
            _load(filename, map_location, **kwargs), filename)

    def _load(filename, map_location=None, **kwargs):
        try:
            if os.environ.get(TRUST_ENV) == '1':
                with _weights_only(False):
                    return loader(filename, map_location, **kwargs)
            with torch.serialization.safe_globals(CHECKPOINT_GLOBALS):
                return loader(filename, map_location, **kwargs)
        except (RuntimeError, EOFError, OSError, ValueError,
                pickle.UnpicklingError) as err:
            if isinstance(err, FileNotFoundError) or not _is_corrupt(
                    filename, err):
                if isinstance(err, pickle.UnpicklingError):
                    raise _untrusted(filename, err) from None
                raise
            raise _corrupt(filename) from None

    return load


def _untrusted(filename, err):
    return UntrustedCheckpointError(
        f'Checkpoint {filename} contains a pickled object outside the types '
        f'an mmengine checkpoint needs ({err}). If you trust this file, set '
        f'{TRUST_ENV}=1 to load it with full unpickling.')


@contextlib.contextmanager
def _weights_only(value):
    """Sets torch.load's default ``weights_only`` for a block."""
    old = os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')
    if not value:
        os.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] = '1'
    try:
        yield
    finally:
        if old is None:
            os.environ.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
        else:
            os.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] = old


def register_safe_checkpoint_loaders():
    CheckpointLoader.register_scheme(
        prefixes='', loader=_safe(load_from_local), force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'),
        loader=_safe(load_from_http),
        force=True)


register_safe_checkpoint_loaders()
