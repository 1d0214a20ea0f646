"""ASGI entry point."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iaas.settings")
# The internet-facing process holds no SSH key and opens no hypervisor connection (M11,
# DESIGN §9): forced here, before the settings load, whatever the environment says.
os.environ["ANDROMEDE_HYPERVISOR_ACCESS"] = "0"
os.environ.pop("ANDROMEDE_SSH_PRIVATE_KEY", None)
application = get_asgi_application()
