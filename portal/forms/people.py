"""Forms of the people pages: members and invitations, API tokens, the audit log's filters.
They check the shape of what a page sends; tenants.services decides (roles, last admin,
expiry ceilings), as it does for the API."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from iaas.models import AuditEvent
from portal import labels
from tenants.models import Role


def role_choices(highest: str = Role.ADMIN) -> list[tuple[str, str]]:
    return [
        (role.value, labels.role_label(role.value))
        for role in Role
        if Role.rank(role) <= Role.rank(highest)
    ]


class InvitationForm(forms.Form):
    """The API's `POST /members`: a username and a role (never an e-mail address: the
    invitation is for the account of that name, which alone can accept it)."""

    username = forms.CharField(
        label=_("Username"),
        max_length=150,
        help_text=_(
            "The account name of the person to invite. They see the invitation under "
            "“Your invitations” in their account, and become a member once they accept it."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    role = forms.ChoiceField(label=_("Role"), choices=role_choices, initial=Role.MEMBER)

    def clean_username(self) -> str:
        return str(self.cleaned_data["username"]).strip()


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=role_choices)


class TokenCreateForm(forms.Form):
    """The API's `POST /tokens`: a name, a role no higher than the caller's, an expiry."""

    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("What the token is for, e.g. “backup script” or “monitoring”."),
    )
    role = forms.ChoiceField(label=_("Role"))
    expires_at = forms.DateTimeField(
        label=_("Expires at"),
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args: Any, caller_role: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        role = self.fields["role"]
        assert isinstance(role, forms.ChoiceField)
        role.choices = role_choices(caller_role)
        role.initial = caller_role
        role.help_text = _("At most your own role in this tenant (%(role)s).") % {
            "role": labels.role_label(caller_role)
        }
        self.fields["expires_at"].help_text = _(
            "Your local time. Empty: in %(default)d days. At most %(max)d days from now."
        ) % {
            "default": settings.TOKEN_DEFAULT_LIFETIME.days,
            "max": settings.TOKEN_MAX_LIFETIME.days,
        }

    def clean_expires_at(self) -> datetime | None:
        value: datetime | None = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError(_("Choose a date and time in the future."))
        return value


def _action_choice(code: str) -> str:
    word = labels.action_label(code)
    return code if word == code else f"{word} ({code})"


class AuditFilterForm(forms.Form):
    """The API's audit filters (tenants.api.filtersets.AuditEventFilterSet): action, outcome
    and a date range, here whole days in the user's time zone."""

    action = forms.ChoiceField(label=_("Action"), required=False)
    outcome = forms.ChoiceField(label=_("Outcome"), required=False)
    since = forms.DateField(
        label=_("From (day)"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label=_("To (day, included)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args: Any, actions: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        action = self.fields["action"]
        outcome = self.fields["outcome"]
        assert isinstance(action, forms.ChoiceField)
        assert isinstance(outcome, forms.ChoiceField)
        action.choices = [("", _("All actions"))] + [(c, _action_choice(c)) for c in actions]
        outcome.choices = [("", _("All outcomes"))] + [
            (code, labels.status_label(code)) for code in AuditEvent.Outcome.values
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", _("The last day comes before the first one."))
        return data

    def api_filters(self) -> dict[str, str]:
        """The valid filters as the API's query parameters (RFC 3339 date-times), for
        AuditEventFilterSet."""
        data = self.cleaned_data
        zone = timezone.get_current_timezone()
        params: dict[str, str] = {}
        if data.get("action"):
            params["action"] = data["action"]
        if data.get("outcome"):
            params["outcome"] = data["outcome"]
        if data.get("since"):
            start = datetime.combine(data["since"], time.min, tzinfo=zone)
            params["created_after"] = start.isoformat()
        if data.get("until"):
            end = datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=zone)
            params["created_before"] = end.isoformat()
        return params
