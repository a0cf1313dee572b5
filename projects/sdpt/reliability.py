"""Training that survives being killed and stops on a numerical fault.

* ``AtomicCheckpointHook``: mmengine's ``CheckpointHook`` writing every
  checkpoint and the ``last_checkpoint`` pointer to a temporary file in the
  same directory and renaming it into place (``os.replace``, atomic on
  POSIX), and deleting outdated checkpoints only once the new one is
  complete. A kill at any moment leaves the previous checkpoint loadable and
  ``last_checkpoint`` pointing at a complete file. ``tools/train.py`` uses it
  in place of ``CheckpointHook``.
* ``FiniteLossHook``: checks the losses (and the trainable parameters) after
  every iteration and stops the run at the first non-finite value, naming the
  iteration, before any checkpoint of that iteration is written.
* ``RandomStateHook``: stores the random number generators' states in each
  checkpoint and puts them back on resume exactly where the uninterrupted run
  had them (after the data loader has been advanced past the trained
  batches), and keeps validation from drawing on the training streams. With a
  fixed seed and ``deterministic=True``, a resumed run's prompts equal an
  uninterrupted run's bit for bit on CPU.
"""
import math
import os
import os.path as osp
import random
import tempfile

import numpy as np
import torch
from mmengine.dist import all_reduce, is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmdet.registry import HOOKS

ATOMIC_BACKEND = 'atomic_local'


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader (or a crash) sees either
    the old file or the new one, never a part."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=directory)
    try:
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


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` / ``put_text``."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(str(filepath), obj.encode(encoding))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints survive a kill (module doc).

    Same arguments as mmengine's ``CheckpointHook``. Local output
    directories without explicit ``backend_args`` use the atomic backend;
    other storage keeps its own backend.
    """

    def before_train(self, runner) -> None:
        out_dir = self.out_dir or runner.work_dir
        if (self.backend_args is None and self.file_client_args is None
                and '://' not in str(out_dir)):
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        super().before_train(runner)

    def _save_checkpoint_with_step(self, runner, step, meta):
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write(
            osp.join(runner.work_dir, 'last_checkpoint'),
            str(self.last_ckpt).encode())
        # Only now that the new checkpoint is complete.
        if outdated is not None and outdated != step:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)


def use_atomic_checkpoints(cfg) -> bool:
    """Swap mmengine's ``CheckpointHook`` for ``AtomicCheckpointHook`` in a
    config (same arguments). Returns whether it did."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if hook is not None and hook.get('type') in ('CheckpointHook',
                                                 CheckpointHook):
        hook['type'] = 'AtomicCheckpointHook'
        return True
    return False


class NonFiniteLossError(FloatingPointError):
    pass


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop at the first iteration whose loss (or a trainable parameter) is
    NaN or infinite, before that iteration's checkpoint is written.

    mmengine's ``CheckInvalidLossHook`` looks only every ``interval``
    iterations and lets the checkpoint hook save the broken state first; this
    hook runs every iteration with a higher priority than the checkpoint
    hook. All ranks agree on the verdict, so a distributed run stops on every
    rank at once.
    """
    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        bad = {}
        for name, value in (outputs or {}).items():
            if 'loss' not in name:
                continue
            value = float(value.detach().float().mean()) if isinstance(
                value, torch.Tensor) else value
            if isinstance(value, (int, float)) and not math.isfinite(value):
                bad[name] = value
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        params = [n for n, p in model.named_parameters()
                  if p.requires_grad and not torch.isfinite(p).all()]
        flag = torch.tensor(float(bool(bad or params)))
        all_reduce(flag, op='max')
        if not flag.item():
            return
        iteration = runner.iter + 1
        last = runner.message_hub.get_info('last_ckpt')
        found = ', '.join(f'{k}={v}' for k, v in bad.items()) or (
            'a finite loss on this rank, but another rank\'s was not'
            if not params else 'the loss was finite')
        if params:
            found += f'; non-finite trainable parameters: {params[:5]}'
        raise NonFiniteLossError(
            f'Non-finite loss at iteration {iteration} ({found}). Training '
            f'stopped before saving this iteration; the last good checkpoint '
            f'is {last or "none (no checkpoint was saved yet)"}'
            + (f' (continue with --resume {last})' if last else '') +
            '. Usual causes: a learning rate too high, fp16 overflow '
            '(use --amp for dynamic loss scaling), broken boxes (run '
            'tools/check_annotations.py).')


def get_random_state() -> dict:
    np_state = np.random.get_state()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(
            name=np_state[0],
            keys=torch.from_numpy(np_state[1].astype(np.int64)),
            pos=int(np_state[2]),
            has_gauss=int(np_state[3]),
            cached_gaussian=float(np_state[4])),
        python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    n = state['numpy']
    np.random.set_state((n['name'], n['keys'].numpy().astype(np.uint32),
                         n['pos'], n['has_gauss'], n['cached_gaussian']))
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class _RestoreAfter:
    """Data loader iterator that puts the random state back right before the
    first batch the resumed run trains on (after ``skip`` batches)."""

    def __init__(self, iterator, skip, state):
        self._iterator, self._skip, self._state = iterator, skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self._state is not None:
            if self._skip == 0:
                set_random_state(self._state)
                self._state = None
            else:
                self._skip -= 1
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self._iterator, name)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Resume with the random state of the uninterrupted run (module doc)."""
    priority = 'VERY_HIGH'
    KEY = 'random_state'

    def __init__(self):
        self._resumed = None
        self._saved_for_val = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[self.KEY] = get_random_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed = checkpoint.get(self.KEY)

    def before_train(self, runner) -> None:
        state, self._resumed = self._resumed, None
        loop = runner.train_loop
        if loop.iter == 0:
            return  # a fresh run (or weights loaded with load_from)
        if state is None:
            runner.logger.warning(
                'The checkpoint holds no random state (saved without '
                'RandomStateHook): the resumed run will not repeat the '
                'uninterrupted one exactly.')
            return
        if hasattr(loop, 'dataloader_iterator'):
            # IterBasedTrainLoop replays `iter` batches before training on:
            # restore after them, where the uninterrupted run stood.
            loop.dataloader_iterator = _RestoreAfter(
                loop.dataloader_iterator, loop.iter, state)
        else:  # epoch-based: the next epoch starts a fresh iterator
            set_random_state(state)
        runner.logger.info('Random state restored from the checkpoint.')

    def before_val(self, runner) -> None:
        self._saved_for_val = get_random_state()

    def after_val(self, runner) -> None:
        if self._saved_for_val is not None:
            set_random_state(self._saved_for_val)
            self._saved_for_val = None
