"""Who still needs an image's file. Apps that read image files register a check in their
`AppConfig.ready()` (compute: an instance being built or rebuilt from the image); deleting an
image is refused with 409 `image_in_use` while one of them answers."""

from __future__ import annotations

from collections.abc import Callable

from iaas.errors import ConflictError
from images.models import Image

#: Returns why `image` cannot be deleted now, or None.
InUseCheck = Callable[[Image], str | None]
_checks: list[InUseCheck] = []


def register_in_use_check(check: InUseCheck) -> None:
    if check not in _checks:
        _checks.append(check)


def refuse_if_in_use(image: Image) -> None:
    """409 `image_in_use` with the first registered check's reason."""
    for check in _checks:
        reason = check(image)
        if reason:
            raise ConflictError(reason, code="image_in_use")
