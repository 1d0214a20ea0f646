"""Image tasks: thin — they call one service."""

from __future__ import annotations

from celery import shared_task

from images.services.exports import exports_expire
from images.services.images import image_uploads_expire


@shared_task(name="images.expire_uploads")
def expire_uploads() -> list[str]:
    """Uploads whose lease has passed (their API process died mid-upload) go back to queued,
    their partial files removed (Celery beat, every minute)."""
    return image_uploads_expire()


@shared_task(name="images.expire_exports")
def expire_exports() -> list[str]:
    """Exports past their expiry are erased: overwritten, then unlinked (Celery beat)."""
    return exports_expire()
