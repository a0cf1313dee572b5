"""Inference inputs: image files, folders and globs, read the way the
config's test pipeline reads them, bad files reported instead of raised.

Decoding is the config's own ``LoadImageFromFile`` (mmcv's ``imfrombytes``
with the config's ``color_type`` and ``imdecode_backend``), exactly as in
training and testing: grayscale and RGBA images become 3-channel BGR, and the
cv2 backend applies the EXIF orientation. Two things that loader does not
catch are checked here: a file that does not decode at all (a non-image:
mmcv raises an assertion) and a truncated file (cv2 decodes what is there and
fills the rest with grey; Pillow refuses it).
"""
import glob
import os
import os.path as osp
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
from mmcv.transforms import LoadImageFromFile

# mmdet's DetInferencer reads folders with these suffixes.
from mmdet.apis.det_inferencer import IMG_EXTENSIONS
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import TRANSFORMS
from mmengine.dataset import Compose
from PIL import Image, UnidentifiedImageError


class BadImage(Exception):
    """An input that cannot be used; the message says why and what to do."""


@dataclass
class Skipped:
    path: str
    reason: str


def collect_images(inputs: Sequence[str]) -> Tuple[List[str], List[Skipped]]:
    """Files named by ``inputs`` (files, folders, glob patterns), in order,
    without duplicates, and the inputs that name none.

    A folder gives its files with an image suffix (mmdet's
    ``IMG_EXTENSIONS``, as ``DetInferencer``), sorted, not recursive; a glob
    gives every file it matches (``**`` recursive); a file is taken as it
    is, whatever its suffix (whether it is an image is found when it is
    read).
    """
    files, skipped, seen = [], [], set()

    def add(path):
        if path not in seen:
            seen.add(path)
            files.append(path)

    for item in inputs:
        item = str(item)
        if osp.isdir(item):
            found = sorted(
                osp.join(item, name) for name in os.listdir(item)
                if name.lower().endswith(IMG_EXTENSIONS)
                and osp.isfile(osp.join(item, name)))
            if not found:
                skipped.append(Skipped(item, 'folder without image files '
                                       f'({", ".join(IMG_EXTENSIONS)})'))
            for path in found:
                add(path)
        elif glob.has_magic(item):
            found = sorted(p for p in glob.glob(item, recursive=True)
                           if osp.isfile(p))
            if not found:
                skipped.append(Skipped(item, 'pattern matches no file'))
            for path in found:
                add(path)
        else:
            add(item)  # a missing file is reported when it is read
    return files, skipped


def split_test_pipeline(pipeline_cfg):
    """(the image loader, the rest) of a config's test pipeline, without
    ``LoadAnnotations`` (inference has no annotations)."""
    transforms = [TRANSFORMS.build(t) if isinstance(t, dict) else t
                  for t in pipeline_cfg]
    if not transforms or not isinstance(transforms[0], LoadImageFromFile):
        raise ValueError(
            'The test pipeline must start with LoadImageFromFile (the '
            'inference tool reads image files with it).')
    rest = [t for t in transforms[1:] if not isinstance(t, LoadAnnotations)]
    return transforms[0], Compose(rest)


def read_image(loader, path: str, max_pixels: Optional[int] = None) -> dict:
    """``loader`` (the config's ``LoadImageFromFile``) applied to ``path``:
    the results dict with ``img``; :class:`BadImage` when the file is
    missing, unreadable, not an image, truncated or (with ``max_pixels``)
    larger than ``max_pixels`` pixels, which is checked from the header,
    before anything is decoded."""
    if not osp.exists(path):
        raise BadImage('no such file')
    if osp.isdir(path):
        raise BadImage('a folder inside a glob match; give it as a folder')
    if not os.access(path, os.R_OK):
        raise BadImage('cannot be read (permission denied)')
    if osp.getsize(path) == 0:
        # cv2 asserts on an empty buffer (cv2.error), before any decoding
        raise BadImage('empty file (0 bytes)')
    if max_pixels:
        _check_pixels(path, max_pixels)
    try:
        results = loader(dict(img_path=path))
    except (AssertionError, ValueError, TypeError):  # mmcv: decoded to None
        results = None
    except OSError as err:
        raise BadImage(f'cannot be read ({err.strerror or err})') from None
    except cv2.error as err:  # the cv2 backend refused the bytes
        raise BadImage(f'not an image (OpenCV: {err.err or err})') from None
    if results is None or results.get('img') is None:
        _check_complete(path)  # an image file that is cut short?
        raise BadImage('not an image (the loader cannot decode it)')
    _check_complete(path)
    return results


def _check_complete(path: str) -> None:
    """Refuse a truncated or corrupt file the loader decoded anyway."""
    try:
        with Image.open(path) as image:
            image.load()
    except UnidentifiedImageError:
        return  # a format only the loader reads: nothing more to check
    except (OSError, SyntaxError, ValueError) as err:
        raise BadImage(f'truncated or corrupt ({err}); replace it with a '
                       f'complete copy') from None


def _check_pixels(path: str, max_pixels: int) -> None:
    """Refuse an image of more than ``max_pixels`` pixels from its header
    (a decompression bomb is refused before it is decoded)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Image.DecompressionBombError as err:
        raise BadImage(f'too large ({err})') from None
    except (UnidentifiedImageError, OSError, ValueError):
        return  # the loader decides what it is
    if width * height > max_pixels:
        raise BadImage(f'too large: {width} x {height} pixels, more than the '
                       f'{max_pixels:,} taken here; downscale it')
