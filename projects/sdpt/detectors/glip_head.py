"""GLIP's head with the widths of its image-text fusion set by the config.

mmdet's ``VLFusionModule`` builds every ``VLFuse`` at GLIP-T's widths (image
256, text 768, attention 2048) whatever the head's own channels are. That fits
the released GLIP models; a small GLIP trained from scratch (the synthetic
transfer suite's base, shipped in the repository) needs narrower fusion
blocks, or they alone outweigh the rest of the detector.
"""
from mmdet.models.dense_heads import ATSSVLFusionHead
from mmdet.models.utils.vlfuse_helper import VLFuse
from mmdet.registry import MODELS


@MODELS.register_module()
class SizedATSSVLFusionHead(ATSSVLFusionHead):
    """mmdet's ``ATSSVLFusionHead`` whose ``VLFuse`` blocks take the head's
    visual width (``in_channels`` for the first DyHead block,
    ``feat_channels`` after it), the language model's width, and
    ``fusion_embed_dim`` / ``fusion_num_heads`` for the attention.

    Everything else (DyHead tower, prediction layers, losses) is mmdet's; the
    fusion blocks are replaced by ``VLFuse`` instances of the requested size
    right after mmdet builds the head, so the result loads, tunes and
    serves like any GLIP.

    Example::

        bbox_head=dict(type='SizedATSSVLFusionHead', in_channels=128,
                       feat_channels=128, fusion_embed_dim=1024,
                       fusion_num_heads=8, early_fuse=True, ...)
    """

    def __init__(self,
                 *args,
                 fusion_embed_dim: int = 2048,
                 fusion_num_heads: int = 8,
                 **kwargs):
        if fusion_embed_dim % fusion_num_heads:
            raise ValueError(
                f'bbox_head.fusion_embed_dim={fusion_embed_dim} must be a '
                f'multiple of bbox_head.fusion_num_heads={fusion_num_heads}.')
        super().__init__(*args, **kwargs)
        tower = self.head.dyhead_tower
        fuse_indices = [
            i for i, block in enumerate(tower) if isinstance(block, VLFuse)
        ]
        if not fuse_indices:
            raise ValueError(
                'SizedATSSVLFusionHead sizes the image-text fusion blocks, '
                'and this head has none: set bbox_head.early_fuse=True (or '
                'use mmdet\'s ATSSVLFusionHead).')
        for block_index, i in enumerate(fuse_indices):
            v_dim = self.in_channels if block_index == 0 else \
                self.feat_channels
            tower[i] = VLFuse(
                v_dim=v_dim,
                l_dim=self.head.lang_dim,
                embed_dim=fusion_embed_dim,
                num_heads=fusion_num_heads,
                use_checkpoint=tower[i].use_checkpoint)
