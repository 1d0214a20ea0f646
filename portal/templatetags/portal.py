"""Template filters of the portal: status words and badges, roles, sizes."""

from __future__ import annotations

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from django.utils.safestring import SafeString

from portal import labels

register = template.Library()


@register.filter
def status(code: str | None) -> str:
    return labels.status_label(code)


@register.filter
def task(code: str | None) -> str:
    return labels.task_label(code)


@register.filter
def role(code: str) -> str:
    return labels.role_label(code)


@register.filter
def badge(code: str | None) -> SafeString:
    """A status as a badge: its word, and a tone the stylesheet colours (never colour alone:
    the word is always there)."""
    return format_html(
        '<span class="badge badge-{}">{}</span>', labels.tone(code), labels.status_label(code)
    )


@register.filter
def gib(value: int | None) -> str:
    """A size in GiB, as the user's locale writes sizes (`filesizeformat` is translated)."""
    return "" if value is None else str(filesizeformat(int(value) * 1024**3))


@register.filter
def mib(value: int | None) -> str:
    return "" if value is None else str(filesizeformat(int(value) * 1024**2))


@register.filter
def percent(used: float | int | None, limit: float | int | None) -> int:
    """`used` as a whole percentage of `limit` (0 when there is no limit), at most 100."""
    if not limit or used is None:
        return 0
    return max(0, min(100, round(100 * float(used) / float(limit))))


@register.filter
def action(code: str) -> str:
    return labels.action_label(code)


@register.filter
def quota(resource: str) -> str:
    return labels.quota_label(resource)


@register.filter
def power(code: str | None) -> str:
    return labels.power_label(code)
