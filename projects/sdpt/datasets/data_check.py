"""Check a COCO-format detection set before training on it.

mmdet's ``CocoDataset`` trusts its annotation file: a malformed entry either
crashes the run (often mid-epoch, deep inside mmcv or pycocotools) or is
dropped without a word, and some mistakes silently shift labels (a class list
in another order than the file's categories). ``check_coco_annotations``
reads the file the way mmdet will and reports every problem with the file and
field it is in and how to fix it::

    report = check_coco_annotations('annotations/train.json',
                                    img_dir='images/', classes=('cat', 'dog'),
                                    tokenizer_max_tokens=256)
    print(report.format())
    report.raise_if_errors()      # DataCheckError listing the errors

Errors are what would crash the run or train on wrong labels; warnings are
what mmdet handles but the user should know (boxes it drops, grayscale / RGBA
/ EXIF-rotated images it converts, images without boxes, class names the text
encoder cannot read). ``tools/check_annotations.py`` is the command line, and
``tools/train.py`` runs ``check_train_data`` on the training set before it
builds anything.
"""
import json
import math
import os.path as osp
import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from PIL import Image, UnidentifiedImageError
from transformers import AutoTokenizer, BasicTokenizer

MAX_LISTED = 20  # issues listed per kind in a formatted report
SPECIAL_TOKENS = '. '  # mmdet's GLIP / Grounding DINO join class names so
# Grounding DINO splits its text self-attention into phrases at these tokens.
PHRASE_SEPARATORS = '.?!'



def _stats_text(stats) -> str:
    return ', '.join(f'{k}: {v}' for k, v in stats.items())

class DataCheckError(ValueError):
    """Raised by :meth:`DataCheckReport.raise_if_errors`."""

    def __init__(self, report: 'DataCheckReport'):
        super().__init__(report.format())
        self.report = report


@dataclass
class Issue:
    file: str     # the file the problem is in (annotation file or image)
    where: str    # the record / field, e.g. "annotations[3] (id=7).bbox"
    problem: str
    fix: str
    kind: str     # short key, the same for all issues of one sort

    def __str__(self) -> str:
        where = f' {self.where}:' if self.where else ''
        return f'{self.file}:{where} {self.problem} Fix: {self.fix}'


@dataclass
class DataCheckReport:
    ann_file: str
    errors: List[Issue] = field(default_factory=list)
    warnings: List[Issue] = field(default_factory=list)
    stats: Dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, kind, file, where, problem, fix):
        self.errors.append(Issue(file, where, problem, fix, kind))

    def warn(self, kind, file, where, problem, fix):
        self.warnings.append(Issue(file, where, problem, fix, kind))

    def kinds(self, errors: bool = True) -> List[str]:
        return sorted({i.kind for i in (self.errors if errors else
                                        self.warnings)})

    def format(self, max_listed: int = MAX_LISTED) -> str:
        lines = [f'Annotation check of {self.ann_file}: '
                 f'{len(self.errors)} error(s), {len(self.warnings)} '
                 f'warning(s)' + (f' ({_stats_text(self.stats)})'
                                  if self.stats else '')]
        for title, issues in (('ERROR', self.errors),
                              ('WARNING', self.warnings)):
            for issue in issues[:max_listed]:
                lines.append(f'  {title} [{issue.kind}] {issue}')
            if len(issues) > max_listed:
                lines.append(f'  ... and {len(issues) - max_listed} more '
                             f'{title.lower()}(s)')
        return '\n'.join(lines)

    def to_dict(self) -> dict:
        """Plain data (for JSON output)."""
        return dict(ann_file=self.ann_file, stats=dict(self.stats),
                    errors=[asdict(i) for i in self.errors],
                    warnings=[asdict(i) for i in self.warnings])

    def raise_if_errors(self) -> None:
        if self.errors:
            raise DataCheckError(self)


def clean_label_name(name: str) -> str:
    """What mmdet's GLIP / Grounding DINO make of a class name."""
    name = re.sub(r'\(.*\)', '', name)
    name = re.sub(r'_', ' ', name)
    return re.sub(r'  ', ' ', name)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _load_tokenizer(tokenizer):
    if tokenizer is None or not isinstance(tokenizer, str):
        return tokenizer
    return AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)


def check_coco_annotations(ann_file: str,
                           img_dir: Optional[str] = None,
                           classes: Optional[Sequence[str]] = None,
                           tokenizer_max_tokens: Optional[int] = None,
                           *,
                           tokenizer=None,
                           decode_images: bool = True) -> DataCheckReport:
    """Check a COCO-format annotation file (and its images).

    Args:
        ann_file (str): the annotation JSON.
        img_dir (str, optional): the image directory (``data_prefix.img``);
            without it images are not looked at.
        classes (list[str], optional): the class names the config trains on
            (``metainfo.classes``); default: the file's categories.
        tokenizer_max_tokens (int, optional): the text encoder's token limit
            (``language_model.max_tokens``, 256 in mmdet); checks that the
            prompt made of all class names fits.
        tokenizer: a Hugging Face tokenizer or a local directory with one.
            Counts tokens exactly and checks that every class name maps to
            text tokens; without it the count is a lower bound.
        decode_images (bool): decode every image fully (finds truncated
            files); ``False`` reads only the headers.

    Returns:
        DataCheckReport: ``errors`` / ``warnings`` (each an :class:`Issue`
        naming the file, the field and the fix) and ``raise_if_errors()``.
    """
    report = DataCheckReport(str(ann_file))
    data = _load_json(report, ann_file)
    if data is None:
        return report
    categories = _check_categories(report, ann_file, data)
    if categories is None:
        return report
    names = classes if classes is not None else [
        c['name'] for c in data['categories'] if isinstance(c, dict)
        and isinstance(c.get('name'), str)]
    _check_classes(report, ann_file, data, categories, classes)
    images = _check_images(report, ann_file, data, img_dir, decode_images)
    _check_annotations(report, ann_file, data, images, categories, classes)
    _check_class_names(report, ann_file, names, tokenizer_max_tokens,
                       _load_tokenizer(tokenizer))
    return report


# ---------------------------------------------------------------- the file
def _load_json(report, ann_file):
    if not osp.isfile(ann_file):
        report.error(
            'missing-file', ann_file, '', 'The annotation file does not '
            'exist.', 'Check the path (data_root + ann_file in the config).')
        return None
    try:
        with open(ann_file, encoding='utf-8') as f:
            data = json.load(f)
    except UnicodeDecodeError as err:
        report.error('not-json', ann_file, '',
                     f'The file is not UTF-8 text ({err}).',
                     'Write the annotations as UTF-8 JSON.')
        return None
    except json.JSONDecodeError as err:
        report.error(
            'not-json', ann_file, f'line {err.lineno} column {err.colno}',
            f'Not valid JSON: {err.msg}.',
            'Repair or regenerate the file (a truncated copy ends early; '
            f'`python -m json.tool {ann_file}` points at the break).')
        return None
    except RecursionError:
        report.error('not-json', ann_file, '', 'JSON nested too deeply.',
                     'Regenerate the file in COCO format.')
        return None
    if not isinstance(data, dict):
        report.error(
            'not-coco', ann_file, '', f'The top level is a '
            f'{type(data).__name__}, not a COCO object.',
            'Write {"images": [...], "annotations": [...], '
            '"categories": [...]}.')
        return None
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(data.get(key), list):
            what = 'missing' if key not in data else (
                f'a {type(data[key]).__name__}, not a list')
            report.error(
                'not-coco', ann_file, key, f'"{key}" is {what}.',
                f'Give "{key}" as a list (COCO format; a training set needs '
                f'all three of images, annotations, categories).')
    return None if report.errors else data


# ------------------------------------------------------------- categories
def _check_categories(report, ann_file, data) -> Optional[Dict[int, str]]:
    categories, seen_names = {}, {}
    for i, cat in enumerate(data['categories']):
        where = f'categories[{i}]'
        if not isinstance(cat, dict) or not _is_int(cat.get('id')) or \
                not isinstance(cat.get('name'), str):
            report.error('bad-category', ann_file, where,
                         f'A category needs an integer "id" and a string '
                         f'"name"; got {str(cat)[:80]}.',
                         'Give each category {"id": int, "name": str}.')
            continue
        cid, name = cat['id'], cat['name']
        if cid in categories:
            report.error('duplicate-category', ann_file, f'{where}.id',
                         f'Category id {cid} appears twice.',
                         'Give every category its own id.')
        if name in seen_names:
            report.error(
                'duplicate-category', ann_file, f'{where}.name',
                f'Category name {name!r} is used by ids {seen_names[name]} '
                f'and {cid}; mmdet maps class names to ids, so both would '
                f'get one label.', 'Merge the two categories or rename one.')
        categories[cid] = name
        seen_names.setdefault(name, cid)
    if not categories and not report.errors:
        report.error('no-categories', ann_file, 'categories',
                     'The file lists no categories.',
                     'List the classes in "categories".')
    report.stats['categories'] = len(categories)
    return None if report.errors else categories


def _check_classes(report, ann_file, data, categories, classes):
    if classes is None:
        return
    names = list(categories.values())
    missing = [c for c in classes if c not in names]
    for name in missing:
        report.error(
            'class-not-in-categories', ann_file, 'categories',
            f'Class {name!r} of the config is not a category name of the '
            f'file; mmdet would drop it and shift every later label.',
            'Spell the class as in the file\'s categories, or add the '
            'category.')
    if missing:
        return
    in_file_order = [n for n in names if n in classes]
    if in_file_order != list(classes):
        report.error(
            'class-order', ann_file, 'categories',
            f'The config lists the classes as {list(classes)} but the file '
            f'orders them {in_file_order}; mmdet numbers labels in the '
            f'file\'s order and builds the text prompt in the config\'s, so '
            f'boxes would be matched to the wrong names.',
            f'Use metainfo.classes = {tuple(in_file_order)} (or reorder the '
            f'file\'s categories).')
    unused = [n for n in names if n not in classes]
    if unused:
        report.warn(
            'category-not-trained', ann_file, 'categories',
            f'{len(unused)} category(ies) are not in the config\'s classes '
            f'and their boxes are ignored: {unused[:10]}.',
            'Add them to metainfo.classes if they should train.')


# ---------------------------------------------------------------- images
def _check_images(report, ann_file, data, img_dir, decode_images):
    images = {}
    for i, img in enumerate(data['images']):
        where = f'images[{i}]'
        if not isinstance(img, dict):
            report.error('bad-image-entry', ann_file, where,
                         f'An image entry must be an object; got '
                         f'{str(img)[:80]}.',
                         'Give {"id", "file_name", "width", "height"}.')
            continue
        where += f' (id={img.get("id")!r})'
        problems = []
        if not _is_int(img.get('id')):
            problems.append('"id" must be an integer')
        if not isinstance(img.get('file_name'), str) or not img['file_name']:
            problems.append('"file_name" must be a non-empty string')
        for key in ('width', 'height'):
            if not _is_number(img.get(key)) or img[key] <= 0:
                problems.append(f'"{key}" must be a positive number')
        if problems:
            report.error('bad-image-entry', ann_file, where,
                         '; '.join(problems) + '.',
                         'Give each image an integer id, its file name and '
                         'its pixel width and height.')
            continue
        if img['id'] in images:
            report.error('duplicate-image', ann_file, where,
                         f'Image id {img["id"]} appears twice (pycocotools '
                         f'keeps only the last).',
                         'Give every image its own id.')
            continue
        images[img['id']] = img
        if img_dir is not None:
            _check_image_file(report, ann_file, where, img,
                              osp.join(img_dir, img['file_name']),
                              decode_images)
    report.stats['images'] = len(images)
    return images


def _check_image_file(report, ann_file, where, img, path, decode):
    if not osp.isfile(path):
        report.error(
            'missing-image', path, f'{ann_file} {where}',
            'The image is listed in the annotation file but does not exist.',
            'Copy the image there (check data_prefix.img) or remove its '
            'entry and its annotations from the file.')
        return
    try:
        with Image.open(path) as im:
            mode, size = im.mode, im.size
            orientation = im.getexif().get(0x0112, 1)
            transparent = 'transparency' in (im.info or {})
            if decode:
                im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        report.error(
            'unreadable-image', path, f'{ann_file} {where}',
            f'The image cannot be decoded ({type(err).__name__}: {err}); '
            f'the data loader would stop the run when it reaches it.',
            'Replace the file with a complete copy (a truncated download or '
            'copy is the usual cause), or remove its entry.')
        return
    except Exception as err:  # noqa: BLE001  (decoders raise anything)
        report.error('unreadable-image', path, f'{ann_file} {where}',
                     f'The image cannot be decoded ({type(err).__name__}).',
                     'Replace the file with a complete copy, or remove its '
                     'entry.')
        return
    if mode in ('L', 'I', 'I;16', 'F', '1'):
        report.warn('grayscale-image', path, f'{ann_file} {where}',
                    f'Grayscale image (mode {mode}); LoadImageFromFile '
                    f'(color_type="color") repeats it into 3 channels.',
                    'Nothing needed; convert it to RGB to silence this.')
    elif mode in ('RGBA', 'LA', 'PA') or (mode == 'P' and transparent):
        report.warn('alpha-image', path, f'{ann_file} {where}',
                    f'Image with transparency (mode {mode}); the loader '
                    f'drops the alpha channel, so transparent areas show '
                    f'whatever colour they store.',
                    'Flatten it onto a background and save as RGB if the '
                    'transparent areas matter.')
    elif mode not in ('RGB', 'P'):
        report.warn('colour-mode', path, f'{ann_file} {where}',
                    f'Image mode {mode}; the loader converts it to BGR.',
                    'Convert it to RGB to be sure of the colours.')
    width, height = size
    shown = (height, width) if orientation in (5, 6, 7, 8) else (width,
                                                                  height)
    declared = (img['width'], img['height'])
    if orientation != 1:
        if declared == shown:
            report.warn(
                'exif-rotated', path, f'{ann_file} {where}',
                f'EXIF orientation {orientation}: the loader (mmcv, cv2) '
                f'rotates the pixels to the displayed orientation '
                f'{shown[0]}x{shown[1]}, which the annotation file\'s size '
                f'matches.', 'Nothing needed if the boxes were drawn on the '
                'displayed image; otherwise re-save it with the rotation '
                'applied (PIL.ImageOps.exif_transpose) and redraw them.')
        else:
            report.error(
                'exif-rotated', path, f'{ann_file} {where}',
                f'EXIF orientation {orientation}: the loader rotates the '
                f'pixels to {shown[0]}x{shown[1]}, but the annotation file '
                f'gives {declared[0]}x{declared[1]} (the stored pixels): the '
                f'boxes were drawn on the unrotated image and would land in '
                f'the wrong place.',
                'Re-save the image with the rotation applied '
                '(PIL.ImageOps.exif_transpose) and transform its boxes, or '
                'strip the EXIF orientation tag.')
    elif declared != shown:
        report.error(
            'size-mismatch', path, f'{ann_file} {where}',
            f'The image is {width}x{height} but the annotation file says '
            f'{declared[0]}x{declared[1]}.',
            'Fix width/height in the file; if the images were resized '
            'after annotating, rescale the boxes too.')


# ----------------------------------------------------------- annotations
def _check_annotations(report, ann_file, data, images, categories, classes):
    counts = dict.fromkeys(images, 0)
    ann_ids = set()
    trained = set(classes) if classes is not None else None
    for i, ann in enumerate(data['annotations']):
        where = f'annotations[{i}]'
        if not isinstance(ann, dict):
            report.error('bad-annotation', ann_file, where,
                         f'An annotation must be an object; got '
                         f'{str(ann)[:80]}.', 'Write COCO annotations.')
            continue
        where += f' (id={ann.get("id")!r})'
        missing = [k for k in ('id', 'image_id', 'category_id', 'bbox',
                               'area') if k not in ann]
        if missing:
            report.error('bad-annotation', ann_file, where,
                         f'Missing {missing}: mmdet reads all of id, '
                         f'image_id, category_id, bbox and area.',
                         'Add them (area = width * height of the box if '
                         'there is no mask).')
            continue
        if not _is_int(ann['id']) or ann['id'] in ann_ids:
            report.error('bad-annotation', ann_file, f'{where}.id',
                         'Annotation ids must be unique integers (mmdet '
                         'asserts it).', 'Renumber the annotations.')
        ann_ids.add(ann['id'] if _is_int(ann['id']) else None)
        if not _is_int(ann['image_id']):
            report.error('bad-annotation', ann_file, f'{where}.image_id',
                         f'"image_id" must be the integer id of an image; '
                         f'got {str(ann["image_id"])[:40]} (pycocotools '
                         f'fails on it).', 'Use the id of the image.')
            continue
        if ann['image_id'] not in images:
            report.warn('unknown-image', ann_file, f'{where}.image_id',
                        f'Image id {ann["image_id"]!r} is not in "images"; '
                        f'the annotation is never used.',
                        'Add the image or delete the annotation.')
            continue
        if not _is_int(ann['category_id']) or \
                ann['category_id'] not in categories:
            report.error(
                'unknown-category', ann_file, f'{where}.category_id',
                f'Category id {ann["category_id"]!r} is not in the '
                f'categories list {sorted(categories)}; mmdet would drop '
                f'the box without a word.',
                'Use one of the listed ids, or add the category.')
            continue
        if not _is_number(ann['area']):
            report.error('bad-annotation', ann_file, f'{where}.area',
                         f'"area" must be a number; got {ann["area"]!r}.',
                         'Set area = width * height of the box.')
            continue
        if _check_box(report, ann_file, where, ann['bbox'],
                      images[ann['image_id']], ann['area']) and (
                          trained is None
                          or categories[ann['category_id']] in trained):
            if not ann.get('ignore', False) and not ann.get('iscrowd', 0):
                counts[ann['image_id']] += 1
    empty = [i for i, n in counts.items() if n == 0]
    report.stats['annotations'] = len(data['annotations'])
    report.stats['images without boxes'] = len(empty)
    for img_id in empty[:MAX_LISTED]:
        report.warn(
            'no-annotations', ann_file,
            f'image id={img_id} ({images[img_id]["file_name"]})',
            'The image has no usable box: it is skipped when '
            'filter_cfg.filter_empty_gt=True, otherwise trained on as '
            'background only.', 'Annotate it, or leave it if it is a true '
            'negative.')
    if len(empty) > MAX_LISTED:
        report.warn('no-annotations', ann_file, '',
                    f'{len(empty) - MAX_LISTED} more images have no '
                    f'usable box.', 'See above.')
    if not images:
        report.error('no-images', ann_file, 'images',
                     'The file lists no (valid) image: there is nothing to '
                     'train on.', 'List the images in "images".')
    elif len(empty) == len(images):
        report.error('no-annotations', ann_file, 'annotations',
                     'No image has a usable box: there is nothing to train '
                     'on.', 'Check the annotations and the class list.')


def _check_box(report, ann_file, where, bbox, img, area) -> bool:
    """Report a bad ``bbox``; True when mmdet would train on the box."""
    where += '.bbox'
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(
            _is_number(v) for v in bbox):
        report.error('bad-box', ann_file, where,
                     f'A box must be 4 finite numbers [x, y, width, height]; '
                     f'got {str(bbox)[:80]}.', 'Write the box in COCO '
                     'format [x, y, width, height].')
        return False
    x, y, w, h = bbox
    if w < 0 or h < 0:
        report.error(
            'bad-box', ann_file, where,
            f'Negative size {w}x{h} in {bbox}.', 'COCO boxes are [x, y, '
            'width, height] (not [x1, y1, x2, y2]): fix the conversion.')
        return False
    width, height = img['width'], img['height']
    inside_w = min(x + w, width) - max(x, 0)
    inside_h = min(y + h, height) - max(y, 0)
    if w > 0 and h > 0 and (inside_w <= 0 or inside_h <= 0):
        report.error(
            'box-outside-image', ann_file, where,
            f'Box {bbox} lies entirely outside the {width}x{height} image '
            f'(id={img["id"]}); mmdet would drop it.',
            'Check the coordinates (pixels, not normalised; [x, y, width, '
            'height]) and the image\'s width/height.')
        return False
    if w < 1 or h < 1 or area <= 0:
        report.warn(
            'degenerate-box', ann_file, where,
            f'Box {bbox} (area {area}) is less than one pixel wide or high; '
            f'mmdet drops it.', 'Fix or delete it.')
        return False
    if x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
        report.warn(
            'box-outside-image', ann_file, where,
            f'Box {bbox} extends past the {width}x{height} image (id='
            f'{img["id"]}); mmdet keeps it unclipped.',
            'Clip it to the image.')
    return True


# ------------------------------------------------------------- class names
def _check_class_names(report, ann_file, names, max_tokens, tokenizer):
    cleaned = [clean_label_name(n) for n in names]
    for name, clean in zip(names, cleaned):
        if not clean.strip():
            report.error(
                'class-name', ann_file, f'class {name!r}',
                'The class name is empty once mmdet removes "(...)" and '
                '"_": the text prompt has nothing for it.',
                'Rename the class with words.')
            continue
        odd = sorted({c for c in clean if c in PHRASE_SEPARATORS})
        if odd:
            report.warn(
                'class-name', ann_file, f'class {name!r}',
                f'The name contains {odd}: Grounding DINO splits the text '
                f'into phrases at these, so the name is read as separate '
                f'phrases.', 'Replace them (e.g. with a space or "-").')
        if any(ord(c) > 127 for c in clean) and tokenizer is None:
            report.warn(
                'class-name', ann_file, f'class {name!r}',
                'Non-ASCII characters: an uncased BERT strips accents and '
                'reads characters outside its vocabulary as [UNK].',
                'Check it with the tokenizer (--tokenizer) or use an ASCII '
                'spelling.')
    if tokenizer is not None:
        _check_tokens(report, ann_file, names, cleaned, max_tokens,
                      tokenizer)
    elif max_tokens is not None:
        basic = BasicTokenizer(do_lower_case=True)
        caption = SPECIAL_TOKENS.join(cleaned)
        count = len(basic.tokenize(caption)) + 2  # [CLS], [SEP]
        if count > max_tokens:
            report.error(
                'too-many-tokens', ann_file, 'categories',
                f'The prompt made of all {len(names)} class names takes at '
                f'least {count} tokens; the text encoder reads '
                f'{max_tokens}: the classes past the limit could never be '
                f'detected.', _TOKENS_FIX)


_TOKENS_FIX = ('Train fewer classes per prompt (split the class list into '
               'chunks, each its own dataset / run), shorten the names, or '
               'raise language_model.max_tokens (at most the BERT\'s 512 '
               'positions).')


def _check_tokens(report, ann_file, names, cleaned, max_tokens, tokenizer):
    """Tokenize the prompt like mmdet and find what each class gets."""
    caption, spans = '', []
    for i, name in enumerate(cleaned):
        spans.append((len(caption), len(caption) + len(name)))
        caption += name + (SPECIAL_TOKENS if i < len(cleaned) - 1 else '')
    enc = tokenizer([caption])
    ids = enc['input_ids'][0]
    unk = getattr(tokenizer, 'unk_token_id', None)
    limit = max_tokens if max_tokens is not None else len(ids)
    past = []
    for name, clean, (beg, end) in zip(names, cleaned, spans):
        if not clean.strip():
            continue
        tokens = {t for c in range(beg, end)
                  for t in [enc.char_to_token(0, c)] if t is not None}
        if not tokens:
            report.error(
                'class-name', ann_file, f'class {name!r}',
                'The tokenizer turns the name into no token at all, so the '
                'class has no text to match boxes with.',
                'Rename the class with characters the tokenizer reads.')
        elif min(tokens) >= limit - 1:
            past.append(name)
        elif all(ids[t] == unk for t in tokens):
            report.warn(
                'class-name', ann_file, f'class {name!r}',
                'The tokenizer reads the whole name as [UNK]: the text '
                'encoder cannot tell it from any other unknown word.',
                'Use a spelling in the tokenizer\'s vocabulary (e.g. ASCII '
                'or English).')
    if max_tokens is not None and len(ids) > max_tokens:
        report.error(
            'too-many-tokens', ann_file, 'categories',
            f'The prompt made of all {len(names)} class names takes '
            f'{len(ids)} tokens; the text encoder reads {max_tokens}: '
            f'{len(past)} class(es) get no text token and could never be '
            f'detected (from {past[:1]} on).', _TOKENS_FIX)


# ---------------------------------------------------------- from a config
def coco_sources(dataset_cfg) -> List[dict]:
    """Annotation file, image dir and classes of each COCO-style dataset in a
    (possibly wrapped) mmdet dataset config."""
    if isinstance(dataset_cfg, (list, tuple)):
        return [s for d in dataset_cfg for s in coco_sources(d)]
    if not isinstance(dataset_cfg, dict):
        return []
    if 'datasets' in dataset_cfg:
        return coco_sources(dataset_cfg['datasets'])
    if 'dataset' in dataset_cfg:
        return coco_sources(dataset_cfg['dataset'])
    if 'ann_file' not in dataset_cfg or 'coco' not in str(
            dataset_cfg.get('type', '')).lower():
        return []
    root = dataset_cfg.get('data_root') or ''
    prefix = (dataset_cfg.get('data_prefix') or {}).get('img', '')

    def join(path):
        return path if not root or osp.isabs(path) or '://' in path else \
            osp.join(root, path)

    classes = (dataset_cfg.get('metainfo') or {}).get('classes')
    return [dict(ann_file=join(dataset_cfg['ann_file']),
                 img_dir=join(prefix) if prefix or root else None,
                 classes=tuple(classes) if classes else None)]


def text_encoder_of(model_cfg):
    """(tokenizer dir or name, max_tokens) of a GLIP / Grounding DINO cfg."""
    detector = model_cfg.get('detector', model_cfg)
    lm = detector.get('language_model') or {}
    return lm.get('name'), lm.get('max_tokens', 256)


def check_train_data(cfg, decode_images: Optional[bool] = None,
                     logger=None) -> List[DataCheckReport]:
    """Check every COCO-style training set of an mmdet config.

    Images are decoded fully for sets of up to 5000 images (a few seconds);
    larger sets get a header check unless ``decode_images=True``.
    """
    name, max_tokens = text_encoder_of(cfg.model)
    tokenizer = None
    if name and osp.isdir(name):
        try:
            tokenizer = _load_tokenizer(name)
        except Exception:  # noqa: BLE001  (the model build reports it)
            tokenizer = None
    reports = []
    for source in coco_sources(cfg.train_dataloader.dataset):
        if '://' in source['ann_file']:
            continue
        decode = decode_images
        if decode is None:
            decode = _count_images(source['ann_file']) <= 5000
        report = check_coco_annotations(
            source['ann_file'], source['img_dir'], source['classes'],
            max_tokens, tokenizer=tokenizer, decode_images=decode)
        if logger is not None:
            log = logger.warning if report.errors or report.warnings else \
                logger.info
            log(report.format(max_listed=10))
        reports.append(report)
    return reports


def _count_images(ann_file) -> int:
    try:
        with open(ann_file, encoding='utf-8') as f:
            return len(json.load(f).get('images', []))
    except Exception:  # noqa: BLE001  (the check reports it)
        return 0
