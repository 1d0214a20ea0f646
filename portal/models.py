"""What the portal keeps of its own: each user's language."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Preference(models.Model):
    """A user's portal preferences (one row per user, made when first chosen)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portal_preference"
    )
    language = models.CharField(max_length=8, choices=settings.LANGUAGES)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.language}"
