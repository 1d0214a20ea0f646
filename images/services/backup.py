"""Image stores in a backup: every file of each store copied with its SHA-256, and put back
(checked against it) by a restore. The database dump holds the images' rows; this holds
their bytes (uploads, snapshots, exports).

A backup directory holds `images/<store name>/<path in the store>`. Files being written
(`*.part`) and inspection sandboxes (`.inspect-*`) are left out: an upload in progress at
backup time is not an image yet. Each store is recorded with its zone and jurisdiction:
the backup holds that jurisdiction's data (docs/operations.md, "Backups and restore").
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from hosts.models import Zone
from images.models import Image, ImageStore
from images.services.stores import DEFAULT_STORE

_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoreCopy:
    name: str
    zone: str
    jurisdiction: str
    directory: str
    files: list[dict[str, Any]]

    def as_manifest(self) -> dict[str, Any]:
        return {
            "name": self.name, "zone": self.zone, "jurisdiction": self.jurisdiction,
            "directory": self.directory, "files": self.files,
        }  # fmt: skip


def stores_to_back_up(names: list[str] | None = None) -> list[tuple[str, str, str, Path]]:
    """(name, zone, jurisdiction, directory) of every image store (only `names`, if given);
    the settings' default store even before its row exists, when its directory does."""
    stores = {
        store.name: (store.name, store.zone.name, store.zone.jurisdiction, store.directory)
        for store in ImageStore.objects.select_related("zone")
    }
    default_dir = Path(settings.IMAGE_STORE_DIR)
    if DEFAULT_STORE not in stores and default_dir.is_dir():
        zone = Zone.objects.filter(name=settings.IMAGE_STORE_ZONE).first()
        jurisdiction = zone.jurisdiction if zone is not None else ""
        zone_name = settings.IMAGE_STORE_ZONE
        stores[DEFAULT_STORE] = (DEFAULT_STORE, zone_name, jurisdiction, default_dir)
    unknown = set(names or ()) - set(stores)
    if unknown:
        raise ValueError(f"no image store named {', '.join(sorted(unknown))}")
    return [stores[name] for name in sorted(stores) if names is None or name in names]


def _store_files(directory: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".inspect-"))
        found += [Path(root) / f for f in sorted(files) if not f.endswith(".part")]
    return found


def copy_hashed(source: Path, target: Path, mode: int = 0o600) -> tuple[str, int]:
    """Copy `source` to a new file `target` (made `mode`, fsynced); its SHA-256 and size."""
    digest, size = hashlib.sha256(), 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with source.open("rb") as reader, os.fdopen(fd, "wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest(), size


def stores_back_up(backup_dir: Path, names: list[str] | None = None) -> list[StoreCopy]:
    """Copy every file of the image stores into `backup_dir`/images/<store>/, each with its
    SHA-256, size and mode, for the manifest."""
    copies = []
    for name, zone, jurisdiction, directory in stores_to_back_up(names):
        files = []
        for source in _store_files(directory):
            relative = source.relative_to(directory)
            target = backup_dir / "images" / name / relative
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            sha256, size = copy_hashed(source, target)
            files.append(
                {
                    "path": str(target.relative_to(backup_dir)), "relative": str(relative),
                    "sha256": sha256, "bytes": size, "mode": source.stat().st_mode & 0o777,
                }
            )  # fmt: skip
        copies.append(StoreCopy(name, zone, jurisdiction, str(directory), files))
    return copies


#: The permission bits a restored file may get, whatever the manifest says.
RESTORED_MODE_MASK = 0o640


def store_directory_now(name: str) -> Path | None:
    """Where the restored database (and these settings) keep the store `name`: its row's
    directory, or the settings' for the default store; None for a store they do not know.
    Never a directory the manifest names: a manifest is not trusted to choose where a
    restore writes."""
    store = ImageStore.objects.filter(name=name).first()
    if store is not None:
        return store.directory
    return Path(settings.IMAGE_STORE_DIR) if name == DEFAULT_STORE else None


def _inside(path: Path) -> bool:
    return not path.is_absolute() and ".." not in path.parts


def stores_restore(backup_dir: Path, stores: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """Put every file of the manifest's `stores` back in place (through a temporary file
    renamed once its SHA-256 matches the manifest's; a file already there with that SHA-256
    is left alone). Returns (files put back, problems): a copy whose checksum differs, or a
    path leading out of its store, is not put in place, and every active image of the
    restored database whose file the backup does not hold, or holds with another checksum
    than the image's, is named."""
    restored, problems = 0, []
    held: dict[tuple[str, str], str] = {}
    for store in stores:
        directory = store_directory_now(store["name"])
        if directory is None:
            problems.append(
                f"image store {store['name']}: not in the restored database; not restored"
            )
            continue
        for entry in store["files"]:
            relative = Path(entry["relative"])
            if not (_inside(relative) and _inside(Path(entry["path"]))):
                problems.append(f"{entry['path']}: names a place outside its store; not restored")
                continue
            held[(store["name"], entry["relative"])] = entry["sha256"]
            target = directory / relative
            if target.is_file() and file_sha256(target) == entry["sha256"]:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".restore-{target.name}")
            mode = int(entry["mode"]) & RESTORED_MODE_MASK
            try:
                sha256, _ = copy_hashed(backup_dir / entry["path"], partial, mode)
            except OSError:
                partial.unlink(missing_ok=True)
                raise
            if sha256 != entry["sha256"]:
                partial.unlink()
                problems.append(
                    f"{entry['path']}: its SHA-256 is {sha256}, the manifest says "
                    f"{entry['sha256']}; not restored"
                )
                continue
            partial.replace(target)
            restored += 1
    problems += _images_not_held(held, {store["name"] for store in stores})
    return restored, problems


def _images_not_held(held: dict[tuple[str, str], str], backed_up: set[str]) -> list[str]:
    problems = []
    active = Image.objects.filter(status=Image.Status.ACTIVE).select_related("store")
    for image in active.order_by("created_at"):
        store = image.store.name if image.store is not None else DEFAULT_STORE
        if store not in backed_up:
            continue
        sha256 = held.get((store, str(image.pk)))
        if sha256 is None:
            problems.append(f"image {image.pk} ({image.name}): the backup holds no file for it")
        elif image.checksum_sha256 and sha256 != image.checksum_sha256:
            problems.append(
                f"image {image.pk} ({image.name}): the backup's file has SHA-256 {sha256}, "
                f"the image was uploaded with {image.checksum_sha256}"
            )
    return problems


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
