"""WSGI entry point (gunicorn iaas.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iaas.settings")
application = get_wsgi_application()
