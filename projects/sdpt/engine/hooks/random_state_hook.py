"""``RandomStateHook``: a resumed run repeats the uninterrupted one.

Stores the random number generators' states in each checkpoint and puts them
back on resume exactly where the uninterrupted run had them (after the data
loader has been advanced past the trained batches), and keeps validation from
drawing on the training streams. With a fixed seed and
``deterministic=True``, a resumed run's prompts equal an uninterrupted run's
bit for bit on CPU.
"""
import random

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook


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
