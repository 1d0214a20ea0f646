"""Sign-in forms of the portal (tenant realm) and the operator admin (operator realm): a
password and, for an account enrolled in MFA, its one-time code (tenants.signin)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from tenants.signin import Realm, refusal_reason

MESSAGES = {
    "locked_out": "Wrong username or password, or too many failed attempts: wait and try again.",
    "mfa_token_required": "Enter the code from your authenticator app (or a recovery code).",
    "invalid_mfa_token": "That code is not valid.",
}


class SignInForm(AuthenticationForm):
    """Django's AuthenticationForm with a one-time code, checked by the auth backend."""

    realm = Realm.TENANT
    refusal_messages: dict[str, Any] = MESSAGES  # the portal's form says them in French too
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Wrong username or password.",
    }
    otp_token = forms.CharField(
        label="One-time code",
        required=False,
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text="From your authenticator app, or one of your recovery codes.",
    )

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            self.user_cache = authenticate(
                self.request,
                username=username,
                password=password,
                otp_token=self.cleaned_data.get("otp_token") or None,
                realm=self.realm,
            )
            if self.user_cache is None:
                reason = refusal_reason(self.request)
                if reason in self.refusal_messages:
                    raise ValidationError(self.refusal_messages[reason], code=reason)
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class OperatorSignInForm(SignInForm):
    """The operator admin's sign-in: operator accounts only, on their own lockout."""

    realm = Realm.OPERATOR

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not user.is_staff:
            raise self.get_invalid_login_error()
