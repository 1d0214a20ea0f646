"""The portal's pages, one module per area; each module's `urlpatterns` is mounted by
portal/urls.py (tenant areas under /t/<tenant>/, the operator console under /ops/)."""
