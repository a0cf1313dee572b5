"""Files written whole (projects/sdpt/utils/io.py): the usual mode, the old
file left as it was when a write fails."""
import os
import stat

import pytest

from projects.sdpt.utils.io import atomic_write_json, read_json


def test_atomic_write_gives_the_file_the_usual_mode(tmp_path):
    path = str(tmp_path / 'm.json')
    old = os.umask(0o022)
    try:
        atomic_write_json(dict(a=1), path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_atomic_json_leaves_the_old_file_on_failure(tmp_path):
    path = str(tmp_path / 'sub' / 'result.json')
    atomic_write_json(dict(a=1), path)
    assert read_json(path) == dict(a=1)
    with pytest.raises(TypeError):
        atomic_write_json(dict(a=object()), path)
    assert read_json(path) == dict(a=1)
    assert os.listdir(tmp_path / 'sub') == ['result.json']
    assert read_json(str(tmp_path / 'missing.json'), 'none') == 'none'
