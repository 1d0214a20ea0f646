"""The portal's sign-in form: the tenant realm's (tenants.forms.SignInForm, with its lockout
and audit), its labels and messages in the user's language."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from tenants.forms import OperatorSignInForm, SignInForm


class PortalSignInForm(SignInForm):
    error_messages = {
        **SignInForm.error_messages,
        "invalid_login": _("Wrong username or password."),
        "inactive": _("This account is inactive."),
    }
    refusal_messages = {
        "locked_out": _(
            "Wrong username or password, or too many failed attempts: wait a few minutes "
            "and try again."
        ),
        "mfa_token_required": _(
            "Enter the code from your authenticator app (or one of your recovery codes)."
        ),
        "invalid_mfa_token": _("That code is not valid: enter the current one from your app."),
    }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["username"].label = _("Username")
        self.fields["password"].label = _("Password")
        otp = self.fields["otp_token"]
        otp.label = _("One-time code")
        otp.help_text = _(
            "If your account uses a second factor: the code from your authenticator app, "
            "or one of your recovery codes."
        )
        otp.widget = forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": "32"}
        )


class PortalOperatorSignInForm(PortalSignInForm, OperatorSignInForm):
    """The operator console's sign-in: the operator realm (staff accounts only, their own
    lockout), worded as the portal's."""
