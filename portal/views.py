"""The tenant portal. For now: sign-in (through the same lockout as the API) and a landing
page listing the user's tenants and keypairs; the self-service pages come with later issues."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from compute.selectors import keypair_list
from tenants.mfa import mfa_bound, session_verified
from tenants.models import Membership, Tenant


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if not session_verified(request) and mfa_bound(request.user):
        # MFA is required of this account and it has not enrolled yet: nothing but enrolment.
        return render(request, "portal/mfa_required.html", status=403)
    user_id = int(request.user.pk or 0)
    # A suspended tenant's resources are not shown, as the API refuses its tokens (review L8).
    memberships = Membership.objects.filter(
        user_id=user_id, tenant__status=Tenant.Status.ACTIVE
    ).select_related("tenant")
    tenants = [
        {"membership": m, "keypairs": list(keypair_list(m.tenant).order_by("name")[:50])}
        for m in memberships
    ]
    return render(request, "portal/home.html", {"tenants": tenants})
