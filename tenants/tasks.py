"""Tenancy housekeeping tasks (control queue)."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from tenants.models import SignInAttempt


@shared_task(name="tenants.purge_signin_attempts")
def purge_signin_attempts() -> int:
    """Drop sign-in attempts too old to matter for lockout (kept a day for investigation)."""
    horizon = timezone.now() - max(
        settings.SIGNIN_WINDOW + settings.SIGNIN_LOCKOUT, timedelta(days=1)
    )
    deleted, _ = SignInAttempt.objects.filter(created_at__lt=horizon).delete()
    return deleted


@shared_task(name="tenants.summarise_auth_noise")
def summarise_auth_noise() -> int:
    """One audit event for the last minutes' anonymous authentication noise."""
    from tenants import auth_noise

    return auth_noise.summarise()
