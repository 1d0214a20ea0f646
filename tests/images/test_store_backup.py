"""Image store files in a backup (images.services.backup): copied with their SHA-256, put
back only when the copy still has it, never outside their store; the active images whose
file the backup lacks are named. (The whole drill: tests/compute/test_restore_drill.py.)"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from images.services.backup import stores_back_up, stores_restore
from images.services.images import image_file_path

pytestmark = pytest.mark.django_db


def test_files_are_put_back_only_with_their_checksum_and_inside_their_store(cloud, tmp_path):
    path = image_file_path(cloud.image)
    original = path.read_bytes()
    (Path(settings.IMAGE_STORE_DIR) / "upload.part").write_bytes(b"half")  # not an image yet
    with pytest.raises(ValueError, match="no image store named elsewhere"):
        stores_back_up(tmp_path, ["elsewhere"])  # backup.sh --stores elsewhere
    (copy,) = [c.as_manifest() for c in stores_back_up(tmp_path, ["default"])]
    assert (copy["zone"], copy["jurisdiction"]) == (settings.IMAGE_STORE_ZONE, "FR")
    assert [f["relative"] for f in copy["files"]] == [str(cloud.image.pk)]
    (entry,) = copy["files"]
    assert entry["sha256"] == hashlib.sha256(original).hexdigest() == cloud.image.checksum_sha256
    shutil.rmtree(settings.IMAGE_STORE_DIR)

    (tmp_path / entry["path"]).write_bytes(original + b"rot")  # the backup's copy went bad
    escape = dict(entry, relative="../../escaped")
    restored, problems = stores_restore(tmp_path, [dict(copy, files=[entry, escape])])
    assert restored == 0
    assert f"{entry['path']}: its SHA-256 is" in problems[0]
    assert "names a place outside its store" in problems[1]
    assert len(problems) == 2
    assert not path.exists()
    assert not list(tmp_path.parent.glob("**/escaped"))

    _, problems = stores_restore(tmp_path, [dict(copy, files=[])])
    assert problems == [f"image {cloud.image.pk} (andromede-test): the backup holds no file for it"]
    (tmp_path / entry["path"]).write_bytes(original)
    assert stores_restore(tmp_path, [copy]) == (1, [])
    assert path.read_bytes() == original
    assert stores_restore(tmp_path, [copy]) == (0, [])  # already in place: left alone


def test_a_tampered_manifest_chooses_neither_the_directory_nor_the_mode(cloud, tmp_path):
    """A manifest is not trusted where it could make a restore write elsewhere: a store the
    restored database does not know (whatever directory the manifest names), a source path
    leading out of the backup, and permission bits beyond owner read-write, group read."""
    path = image_file_path(cloud.image)
    (copy,) = [c.as_manifest() for c in stores_back_up(tmp_path / "backup", ["default"])]
    (entry,) = copy["files"]
    elsewhere = tmp_path / "elsewhere"
    stranger = dict(copy, name="stranger", directory=str(elsewhere))
    outside = dict(entry, path="../../etc/passwd")
    path.unlink()

    restored, problems = stores_restore(
        tmp_path / "backup", [stranger, dict(copy, files=[outside])]
    )
    assert restored == 0
    assert problems[0] == "image store stranger: not in the restored database; not restored"
    assert "names a place outside its store" in problems[1]
    assert not elsewhere.exists()
    assert not path.exists()

    set_uid = dict(entry, mode=0o4777)
    assert stores_restore(tmp_path / "backup", [dict(copy, files=[set_uid])]) == (1, [])
    assert path.stat().st_mode & 0o7777 == 0o640
