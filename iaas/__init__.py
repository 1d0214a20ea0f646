"""The Andromède Django project: settings, URLs, Celery app, API conventions and audit log."""

from iaas.celery import app as celery_app

__all__ = ["celery_app"]
