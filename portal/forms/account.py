"""Forms of the account pages."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class OtpCodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code from your app"),
        max_length=32,
        help_text=_("The six digits your authenticator app shows now."),
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": "32"}
        ),
    )
