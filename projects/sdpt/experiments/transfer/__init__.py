"""The transfer suite: few-shot tuning of every method on four target shifts
of the synthetic corpus, from shipped tiny bases, under one protocol.

- ``configs``: the config of a run (method, shift, corpus root);
- ``protocol``: the learning-rate rules (pure functions of result rows);
- ``runs``: the data and the grid tasks (zero-shot evaluation, tuning);
- ``plan``: :class:`TransferPlan` and the grid tasks that carry it out;
- ``report``: the finished and selected runs, tables and plots.

Import them by name: the package itself imports none, because
``experiments/bases.py`` imports ``configs`` and ``plan`` imports
``bases``.

Protocol (the same for every method, ablation and shift):

1. **Bases.** The tiny GLIP / Grounding DINO pretrained on the corpus's source
   domain (``experiments/bases.py``): the shipped ``checkpoints/synthetic/``
   files, or pretrained here (``--pretrain``, deterministic).
2. **Learning rate.** Each method's recipe learning rate (its zoo config)
   times the same log-spaced factors (default 0.1, 1, 10), all trained on the
   first few-shot seed for the same number of iterations; the one with the
   best AP on the shift's **dev** split is selected (ties: the one nearest
   the recipe). The dev split is disjoint from the k shots and from test.
   When the best dev AP sits at an end of the learning rates tried, the grid
   goes one log step further past that end, up to ``lr_edge_steps`` times
   (default 2), so that no method is reported at a learning rate its grid
   cut off; the report counts the cells still selected at an end. A *flat*
   grid (every dev AP within ``FLAT_DEV_AP`` of the others) cannot tell its
   learning rates apart, so it goes one step past its top: on these tasks a
   flat grid means the method has not yet moved the base far enough to
   matter (a larger step that loses puts the best inside and stops).
3. **Seeds.** The selected setting is run on every few-shot seed (the split
   and the training seed); tables give the **test** AP as mean ± std.

Every run also records (``metrics.json`` in its folder, a row of
``transfer.csv``): the source-domain AP with its method on (forgetting); the
test AP with the fusion residual removed; the relative change its method
makes to the fused features against the base; the largest difference between
its predictions with the method switched off and the base's (0 = exactly the
base); the gradient norm of the trainable parameters at the first step; the
loss flatness of its last tenth. A run whose loss turns non-finite
(``FiniteLossHook``) stops there and scores 0 on dev and test, with the
reason in ``diverged``: that learning rate broke the method. Zero-shot rows
add the text-side oracle (the base with the names it learnt) where the shift
has one.

Finished runs are skipped (their ``metrics.json`` is read back), so the same
command completes an interrupted suite.
"""
