"""Shared fixtures: offline demo assets and tiny GLIP / Grounding DINO."""
import os
import os.path as osp
import sys
import warnings

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

DEMO_CONFIGS = {
    'glip': osp.join(REPO_ROOT, 'configs/demo/sdpt_glip_tiny_demo.py'),
    'gdino': osp.join(REPO_ROOT, 'configs/demo/sdpt_gdino_tiny_demo.py'),
}


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory):
    """A directory laid out like the repo's data/demo (made offline)."""
    from projects.sdpt.datasets.synthetic.demo_assets import make_demo_assets
    root = tmp_path_factory.mktemp('demo')
    make_demo_assets(str(root / 'data' / 'demo'))
    return root


def demo_config(name, demo_root, **prompt):
    """The demo config of ``name`` with paths under ``demo_root``."""
    from mmengine.config import Config
    import projects.sdpt  # noqa: F401
    cfg = Config.fromfile(DEMO_CONFIGS[name])
    bert = str(demo_root / 'data' / 'demo' / 'bert')
    det = cfg.model.detector
    det.language_model.name = bert
    if name == 'glip':
        det.bbox_head.lang_model_name = bert
    cfg.model.prompt.update(prompt)
    return cfg


def build_model(name, demo_root, seed=0, **prompt):
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = demo_config(name, demo_root, **prompt)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model, cfg


def build_base(name, demo_root, seed=0):
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = demo_config(name, demo_root)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model.detector)
    model.init_weights()
    return model


def make_batch(model, demo_root, image_ids=(1, 2), train=False, cfg=None):
    """A preprocessed batch of demo val images (same size), with GT."""
    from mmdet.datasets import CocoDataset
    from mmengine.dataset import pseudo_collate
    shapes = demo_root / 'data' / 'demo' / 'shapes'
    pipeline = cfg.train_pipeline if train else cfg.test_pipeline
    if train:  # deterministic: no random flip
        pipeline = [t for t in pipeline if t['type'] != 'RandomFlip']
    dataset = CocoDataset(
        data_root=str(shapes),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=('circle', 'square', 'triangle')),
        pipeline=pipeline,
        return_classes=True,
        test_mode=not train)
    items = [dataset[i - 1] for i in image_ids]
    return model.data_preprocessor(pseudo_collate(items), training=train)


def predict(model, batch):
    """(boxes, scores, labels) of each image, in eval mode, without grad."""
    import torch
    model.eval()
    with torch.no_grad():
        results = model(**batch, mode='predict')
    return [(r.pred_instances.bboxes, r.pred_instances.scores,
             r.pred_instances.labels) for r in results]
