"""Andromède settings.

Everything comes from environment variables with safe defaults (DESIGN §11). With nothing set,
the project runs on one machine: SQLite under `var/`, a private Redis on a unix socket under
`var/run/` (started by `make run`), and a secret key generated once into `var/secret_key`.
Production sets DATABASE_URL, CELERY_BROKER_URL, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS and
serves over TLS (secure cookies and HSTS follow from a non-loopback DJANGO_ALLOWED_HOSTS).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from iaas.broker import celery_broker_conf
from iaas.env import (
    database_from_url,
    env_bool,
    env_int,
    env_json_dict,
    env_list,
    env_networks,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ANDROMEDE_VAR_DIR", str(BASE_DIR / "var")))


def _secret_key() -> str:
    """The configured key, or one generated once and kept in var/ for the embedded default."""
    configured = env_str("DJANGO_SECRET_KEY", "")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    # var/ holds the SQLite database (sessions included) and this key: its owner only.
    VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    try:
        # Created 0600 from the start (never readable by others, not even for an instant);
        # O_EXCL: if another process won the race, use its key.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "tenants.admin_config.OperatorAdminConfig",  # django.contrib.admin, with MFA
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # the portal's numbers in the user's locale (intcomma)
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    # The project's apps, in the order of DESIGN §1's arrow: each may import those above it.
    "iaas",
    "tenants",
    "hosts",
    "operations",
    "images",
    "network",
    "volumes",
    "compute",
    "portal",
]

MIDDLEWARE = [
    # Outermost: times every request, whatever answers it (iaas/metrics).
    "iaas.metrics.api_requests.RequestMetricsMiddleware",
    "iaas.proxy.TrustedProxyMiddleware",
    "iaas.middleware.RequestIdMiddleware",
    "iaas.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # The portal's language (French by default, the user's choice once signed in); the API
    # keeps English codes and messages (issue 12).
    "portal.middleware.PortalLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # No inline script, no asset from elsewhere, on every portal and console page.
    "portal.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "iaas.urls"
WSGI_APPLICATION = "iaas.wsgi.application"
ASGI_APPLICATION = "iaas.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.navigation.tenant_nav",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'andromede.sqlite3'}")
    )
}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0)
# A kept connection is checked before a request reuses it: after a database restart the API
# reconnects by itself instead of failing one request per stale connection.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Every query is bounded: a stuck statement must not hold a request or a row lock forever.
    _pg_options = DATABASES["default"].setdefault("OPTIONS", {})
    _pg_options.setdefault("connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5))
    _pg_options.setdefault(
        "options", f"-c statement_timeout={env_int('DATABASE_STATEMENT_TIMEOUT_MS', 30000)}"
    )
else:
    # SQLite (the embedded default): WAL lets readers run beside the writer, and IMMEDIATE
    # transactions take the write lock up front instead of failing half-way ("locked").
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Two database roles (review M2, iaas.db_roles): DATABASE_URL is the runtime role the
# application connects as, which may append to the audit log but not change, delete or
# truncate it, nor disable its triggers; DATABASE_MIGRATE_URL (same database, its owner) is
# used by `manage.py migrate` only, which then grants the runtime role what it needs
# (ANDROMEDE_DATABASE_RUNTIME_ROLE; by default the user of DATABASE_URL when the two differ).
DATABASE_MIGRATE_URL = env_str("DATABASE_MIGRATE_URL", "")
_runtime_user = DATABASES["default"].get("USER", "")
DATABASE_RUNTIME_ROLE = env_str("ANDROMEDE_DATABASE_RUNTIME_ROLE", "") or (
    _runtime_user
    if DATABASE_MIGRATE_URL
    and _runtime_user != database_from_url(DATABASE_MIGRATE_URL).get("USER", "")
    else ""
)

# --- Authentication and sign-in protection --------------------------------------------------
AUTHENTICATION_BACKENDS = ["tenants.signin.LockoutModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:login"
# Failed sign-ins per username (and per source address) inside the window before lockout.
# API request rates (tenants.throttles; "N/s", "N/m", "N/h"; null: unlimited), per token, per
# user (every credential of one account together), per address for anonymous callers, and per
# address for the sign-in endpoints. Override with ANDROMEDE_THROTTLE_RATES='{"token": "50/s"}'.
API_THROTTLE_RATES: dict[str, str | None] = {
    "token": "20/s",
    "user": "40/s",
    "anonymous": "10/s",
    "signin": "20/m",
    **env_json_dict("ANDROMEDE_THROTTLE_RATES", {}),
}
# Reverse proxies (CIDRs) whose X-Forwarded-For names the client (iaas.proxy); none by default.
TRUSTED_PROXIES = env_list("ANDROMEDE_TRUSTED_PROXIES", [])
# Who may read /metrics (iaas/metrics/access.py): an operator's token, from these networks only
# (CIDRs; the peer address as iaas.proxy sees it). Loopback by default.
METRICS_ALLOWED_NETWORKS = env_networks(
    "ANDROMEDE_METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"]
)
# A scrape's queries are cancelled past this (iaas/metrics/registry.py): that collector is then
# reported failed, the others still answer. 500k operations take ~0.5 s to summarise.
METRICS_QUERY_TIMEOUT_MS = env_int("ANDROMEDE_METRICS_QUERY_TIMEOUT_MS", 5000)
SIGNIN_MAX_FAILURES = env_int("ANDROMEDE_SIGNIN_MAX_FAILURES", 5)
SIGNIN_MAX_FAILURES_PER_ADDRESS = env_int("ANDROMEDE_SIGNIN_MAX_FAILURES_PER_ADDRESS", 20)
SIGNIN_WINDOW = timedelta(seconds=env_int("ANDROMEDE_SIGNIN_WINDOW_SECONDS", 900))
SIGNIN_LOCKOUT = timedelta(seconds=env_int("ANDROMEDE_SIGNIN_LOCKOUT_SECONDS", 900))
# API tokens: the longest lifetime a new token may ask for, and the default one.
TOKEN_MAX_LIFETIME = timedelta(days=env_int("ANDROMEDE_TOKEN_MAX_DAYS", 365))
# Live (unrevoked, unexpired) API tokens an account may hold at once.
TOKEN_MAX_PER_USER = env_int("ANDROMEDE_TOKEN_MAX_PER_USER", 50)
TOKEN_DEFAULT_LIFETIME = timedelta(days=env_int("ANDROMEDE_TOKEN_DEFAULT_DAYS", 90))

# Secure cookies and HSTS by default (review L7), except for the loopback-only embedded
# default (`make run`: plain HTTP on 127.0.0.1), where browsers would drop them.
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1", "testserver"}
SECURE_COOKIES = env_bool("ANDROMEDE_SECURE_COOKIES", not set(ALLOWED_HOSTS) <= _LOOPBACK_HOSTS)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("ANDROMEDE_SESSION_SECONDS", 8 * 3600)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if SECURE_COOKIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("ANDROMEDE_HSTS_INCLUDE_SUBDOMAINS", True)

# --- Request limits -------------------------------------------------------------------------
# Largest request body accepted by the API, in bytes (image uploads will have their own path).
API_MAX_BODY_BYTES = env_int("ANDROMEDE_API_MAX_BODY_BYTES", 1024 * 1024)
# Paths (regular expressions) exempt from that limit: image file uploads, which are streamed
# to the image store and bounded by IMAGE_MAX_BYTES instead.
API_BODY_LIMIT_EXEMPT_PATHS = [r"^/api/v1/(admin/)?images/[0-9a-fA-F-]{36}/file$"]
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en"  # the API's; the portal's default is PORTAL_DEFAULT_LANGUAGE
PORTAL_DEFAULT_LANGUAGE = "fr"
# The portal's translations: one catalogue for every app (scripts/messages.sh updates it;
# setup.sh compiles it).
LOCALE_PATHS = [BASE_DIR / "portal" / "locale"]
LANGUAGES = [("fr", "Français"), ("en", "English")]
LANGUAGE_COOKIE_NAME = "andromede_language"
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True

# --- Static files (the admin and the offline Swagger UI are served by WhiteNoise) -----------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise serves from finders; avoid its warning
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- REST API conventions (DESIGN §10) ------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.BearerTokenAuthentication",
        "tenants.authentication.MfaSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["iaas.api.parsers.BoundedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "iaas.api.pagination.CreatedCursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["iaas.api.filters.StrictFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "iaas.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "iaas.api.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "tenants.throttles.TokenRateThrottle",
        "tenants.throttles.UserRateThrottle",
        "tenants.throttles.AnonymousRateThrottle",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "PAGE_SIZE": 50,
}
API_MAX_PAGE_SIZE = 1000

SPECTACULAR_SETTINGS = {
    "TITLE": "Andromède API",
    "DESCRIPTION": (
        "Self-service API of Andromède, a sovereign French IaaS. Authenticate with "
        "`Authorization: Bearer <token>`. Errors have one shape: "
        '`{"error": {"code", "message", "details"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two models have a "role" field with different choices: name their enums apart.
    "ENUM_NAME_OVERRIDES": {
        "TenantRoleEnum": "tenants.models.Role",
        "TenantStatusEnum": "tenants.models.Tenant.Status",
        "StoragePoolRoleEnum": "hosts.models.StoragePool.Role",
        "HostStateEnum": "hosts.models.Host.State",
        "ImageStatusEnum": "images.models.Image.Status",
        "NetworkRealisationEnum": "network.models.status.Realisation",
        "VolumeStatusEnum": "volumes.states.VolumeStatus",
        "VolumeTypeBackendEnum": "volumes.models.VolumeType.Backend",
    },
}

# Idempotency-Key records are kept this long; a retry after that creates anew.
IDEMPOTENCY_TTL = timedelta(hours=env_int("ANDROMEDE_IDEMPOTENCY_TTL_HOURS", 24))

# --- Quotas -----------------------------------------------------------------------------------
# Default limit per resource for tenants without an explicit limit; -1 means unlimited.
# Override with ANDROMEDE_DEFAULT_QUOTAS='{"keypairs": 20}'.
DEFAULT_QUOTAS: dict[str, int] = {
    "keypairs": 100,
    "images": 20,
    "image_gb": 100,  # stored bytes of a tenant's images and snapshots, in GiB
    "instances": 10,
    "vcpus": 20,
    "ram_mb": 51200,
    "disk_gb": 500,
    "server_groups": 10,
    "networks": 10,
    "subnets": 20,
    "ports": 100,
    "routers": 5,
    "security_groups": 20,
    "security_group_rules": 200,
    "floating_ips": 10,
    "volumes": 10,
    "volume_gb": 1000,  # the sizes of a tenant's volumes and volume snapshots, in GiB
    "volume_snapshots": 10,
    **env_json_dict("ANDROMEDE_DEFAULT_QUOTAS", {}),
}

# --- Residency ------------------------------------------------------------------------------
# A new tenant's residency policy: the jurisdictions its data may live in (ISO 3166 codes).
DEFAULT_RESIDENCY = env_list("ANDROMEDE_DEFAULT_RESIDENCY", ["FR"])

# --- Volumes (DESIGN §8) ---------------------------------------------------------------------
# The volume type a create that names none gets, if an operator declared one by this name.
VOLUME_DEFAULT_TYPE = env_str("ANDROMEDE_VOLUME_DEFAULT_TYPE", "standard")

# --- Images (DESIGN §8) ----------------------------------------------------------------------
# The default image store: a directory of image files, one per image named by its id, that
# lies in the zone IMAGE_STORE_ZONE (the embedded default's zone). Other zones' stores are
# declared by operators (images.ImageStore). An image is only stored in a store whose zone's
# jurisdiction its tenant's residency allows. An empty IMAGE_STORE_ZONE: no default store.
IMAGE_STORE_DIR = Path(env_str("ANDROMEDE_IMAGE_STORE_DIR", str(VAR_DIR / "images-store")))
IMAGE_STORE_ZONE = env_str("ANDROMEDE_IMAGE_STORE_ZONE", "fr-demo-1")
# An upload holds its image (`saving`) for this long, renewed while bytes arrive; past it (the
# API process died, or the client stalled) the upload is abandoned by `images.expire_uploads`.
IMAGE_UPLOAD_LEASE = timedelta(seconds=env_int("ANDROMEDE_IMAGE_UPLOAD_LEASE_SECONDS", 300))
# The largest image file accepted, in bytes.
IMAGE_MAX_BYTES = env_int("ANDROMEDE_IMAGE_MAX_BYTES", 20 * 1024**3)
# Exports (a tenant's volumes copied out for download, issue 11 item 9): kept in `exports/` of
# an image store in the data's zone for this many hours, then erased (images.expire_exports);
# at most this many live ones (being made or available) per tenant.
EXPORT_TTL_HOURS = env_int("ANDROMEDE_EXPORT_TTL_HOURS", 24)
EXPORTS_PER_TENANT = env_int("ANDROMEDE_EXPORTS_PER_TENANT", 5)
# Uploaded files are inspected by qemu-img confined (images/sandbox.py, review M5): as this
# unprivileged user (a dedicated one is better than `nobody`), with no network, under these
# limits. Inspection needs the service to run as root to build that confinement. Point
# IMAGE_INSPECT_QEMU_IMG at a QEMU with the CVE-2024-4467 fix if the system's lacks it.
IMAGE_INSPECT_QEMU_IMG = env_str("ANDROMEDE_IMAGE_INSPECT_QEMU_IMG", "qemu-img")
IMAGE_INSPECT_USER = env_str("ANDROMEDE_IMAGE_INSPECT_USER", "nobody")
IMAGE_INSPECT_TIMEOUT_SECONDS = float(env_int("ANDROMEDE_IMAGE_INSPECT_TIMEOUT", 60))
IMAGE_INSPECT_CPU_SECONDS = env_int("ANDROMEDE_IMAGE_INSPECT_CPU_SECONDS", 30)
IMAGE_INSPECT_MEMORY_BYTES = env_int("ANDROMEDE_IMAGE_INSPECT_MEMORY_BYTES", 1024**3)

# --- Networks -------------------------------------------------------------------------------
# The subnet of every tenant's default network (made with its first instance). Empty: each
# default network takes a /27 of TENANT_NETWORK_SUPERNETS that no other one holds.
TENANT_DEFAULT_CIDR = env_str("ANDROMEDE_TENANT_DEFAULT_CIDR", "")
TENANT_NETWORK_SUPERNETS = env_list("ANDROMEDE_TENANT_SUPERNETS", ["198.51.100.0/24"])
# Tenant networks' MTU: 1500 less Geneve's overhead (58 bytes with its options, rounded).
TENANT_NETWORK_MTU = env_int("ANDROMEDE_TENANT_NETWORK_MTU", 1442)
# A default network gets a router with a gateway on the external network of this name (or on
# the only external network there is, when empty); False: default networks stay private.
DEFAULT_EXTERNAL_NETWORK = env_str("ANDROMEDE_DEFAULT_EXTERNAL_NETWORK", "")
TENANT_DEFAULT_ROUTER = env_bool("ANDROMEDE_TENANT_DEFAULT_ROUTER", True)
# OVN (DESIGN §7): the northbound database the control workers write networks into (empty:
# networks stay rows; nothing is realised), with TLS files for an ssl: remote; the mark of
# this installation on its rows (two installations may share one NB); the chassis that carry
# router gateways (SNAT, floating IPs), highest priority first; and the bound on every call.
OVN_NB_REMOTE = env_str("ANDROMEDE_OVN_NB_REMOTE", "")
OVN_NB_PRIVATE_KEY = env_str("ANDROMEDE_OVN_NB_PRIVATE_KEY", "")
OVN_NB_CERTIFICATE = env_str("ANDROMEDE_OVN_NB_CERTIFICATE", "")
OVN_NB_CA_CERT = env_str("ANDROMEDE_OVN_NB_CA_CERT", "")
OVN_OWNER = env_str("ANDROMEDE_OVN_OWNER", "andromede")
OVN_GATEWAY_CHASSIS = env_list("ANDROMEDE_OVN_GATEWAY_CHASSIS", [])
OVN_TIMEOUT_SECONDS = env_int("ANDROMEDE_OVN_TIMEOUT_SECONDS", 10)
# The provider network `make run` (scripts/ovn.sh) gives this machine: the bridge mapping's
# name, its CIDR and the machine's own address on it (the external network's gateway).
OVN_PROVIDER_NETWORK = env_str("ANDROMEDE_OVN_PROVIDER_NETWORK", "")
OVN_PROVIDER_CIDR = env_str("ANDROMEDE_OVN_PROVIDER_CIDR", "")
OVN_PROVIDER_GATEWAY = env_str("ANDROMEDE_OVN_PROVIDER_GATEWAY", "")
# How long a booting instance waits for the control workers to write its ports to OVN.
PORT_REALISE_TIMEOUT_SECONDS = env_int("ANDROMEDE_PORT_REALISE_TIMEOUT_SECONDS", 60)
# DNS servers a new tenant subnet gives its guests when the request names none.
TENANT_DNS_SERVERS = env_list("ANDROMEDE_TENANT_DNS_SERVERS", [])

# --- Hypervisors ------------------------------------------------------------------------------
# Every libvirt call is bounded by this; SSH connects and commands by the next two.
HYPERVISOR_CALL_TIMEOUT_SECONDS = float(env_int("ANDROMEDE_HYPERVISOR_CALL_TIMEOUT", 30))
SSH_CONNECT_TIMEOUT_SECONDS = float(env_int("ANDROMEDE_SSH_CONNECT_TIMEOUT", 10))
SSH_COMMAND_TIMEOUT_SECONDS = float(env_int("ANDROMEDE_SSH_COMMAND_TIMEOUT", 60))
# Whether this process may reach hypervisors (SSH and libvirt). Workers and operators'
# manage.py commands do; the internet-facing API process does not (M11): iaas/wsgi.py and
# iaas/asgi.py force this off before the settings load, and then the SSH key path is not
# even read from the environment (scripts/supervise.py does not pass it to gunicorn either).
HYPERVISOR_ACCESS = env_bool("ANDROMEDE_HYPERVISOR_ACCESS", True)
# The control plane's SSH identity for reaching hosts (its public key goes into the hosts'
# authorized_keys, e.g. by the Ansible role). `make run` generates one under var/ssh/.
SSH_PRIVATE_KEY: Path | None = (
    Path(env_str("ANDROMEDE_SSH_PRIVATE_KEY", str(VAR_DIR / "ssh" / "id_ed25519")))
    if HYPERVISOR_ACCESS
    else None
)
# The known_hosts files written from each host's pinned key, for libvirt's SSH channel.
HOST_KNOWN_HOSTS_DIR = Path(
    env_str("ANDROMEDE_HOST_KNOWN_HOSTS_DIR", str(VAR_DIR / "ssh" / "known_hosts"))
)
# libvirt's in-process fake hypervisor (test:///…) as a host: only the tests turn this on.
ALLOW_TEST_HYPERVISOR = env_bool("ANDROMEDE_ALLOW_TEST_HYPERVISOR", False)
# The console a tenant reads is what workers pushed: after every operation, every
# CONSOLE_REFRESH_SECONDS for running instances, and on demand when a read finds it older
# than CONSOLE_STALE_SECONDS (the API only enqueues that refresh, never waits for it).
CONSOLE_REFRESH_SECONDS = env_int("ANDROMEDE_CONSOLE_REFRESH_SECONDS", 60)
CONSOLE_STALE_SECONDS = env_int("ANDROMEDE_CONSOLE_STALE_SECONDS", 5)
# Hosts send a heartbeat this often; one silent for HOST_DOWN_AFTER is marked down.
HOST_HEARTBEAT_SECONDS = env_int("ANDROMEDE_HOST_HEARTBEAT_SECONDS", 30)
HOST_DOWN_AFTER = timedelta(seconds=env_int("ANDROMEDE_HOST_DOWN_AFTER_SECONDS", 120))
# A worker holds an operation for this long, extended at every step; past it (the worker
# died) the sweeper hands the operation to another worker.
OPERATION_LEASE = timedelta(seconds=env_int("ANDROMEDE_OPERATION_LEASE_SECONDS", 300))
# A queued operation not picked up for this long is sent again.
OPERATION_RESEND_AFTER = timedelta(seconds=env_int("ANDROMEDE_OPERATION_RESEND_SECONDS", 60))
# An operation unfinished this long after its creation is failed by the operations sweeper.
OPERATION_DEADLINE = timedelta(seconds=env_int("ANDROMEDE_OPERATION_DEADLINE_SECONDS", 1800))
# Operations that copy data (exports) get this much longer per GiB: 10 s/GiB is ~100 MiB/s,
# a floor on what a host's storage and the image store are expected to sustain.
COPY_SECONDS_PER_GIB = env_int("ANDROMEDE_COPY_SECONDS_PER_GIB", 10)
# A new instance must be running within this long, or its build fails (and is cleaned up).
INSTANCE_BOOT_TIMEOUT_SECONDS = float(env_int("ANDROMEDE_INSTANCE_BOOT_TIMEOUT", 120))
# A stop asks the guest to power off (ACPI) and forces it off if it is still running after
# this long.
INSTANCE_STOP_TIMEOUT_SECONDS = float(env_int("ANDROMEDE_INSTANCE_STOP_TIMEOUT", 60))
# The embedded default's single host (make run): the local libvirtd.
LOCAL_HOST_NAME = env_str("ANDROMEDE_LOCAL_HOST_NAME", "local")
LOCAL_LIBVIRT_URI = env_str("ANDROMEDE_LOCAL_LIBVIRT_URI", "qemu:///system")
# Where the local host keeps images, instance disks and volumes: a system path, like on a
# production host, so every checkout on one machine agrees with its one libvirtd.
LOCAL_STORAGE_ROOT = env_str("ANDROMEDE_LOCAL_STORAGE_ROOT", "/var/lib/andromede")
# The local host's Open vSwitch: its integration bridge, and its datapath (these machines have
# no openvswitch kernel module: the userspace datapath, shared/notes/ovn-lab.md).
LOCAL_OVS_BRIDGE = env_str("ANDROMEDE_LOCAL_OVS_BRIDGE", "br-int")
LOCAL_OVS_DATAPATH = env_str("ANDROMEDE_LOCAL_OVS_DATAPATH", "netdev")

# --- Audit chain anchoring (review M2, iaas.audit.checkpoints) -------------------------------
# The Ed25519 key that signs checkpoints of the audit chain: a file, never in the database.
# In the embedded default it is made on first use (0600); a configured path must exist.
AUDIT_SIGNING_KEY = Path(env_str("ANDROMEDE_AUDIT_SIGNING_KEY", str(VAR_DIR / "audit-signing.key")))
AUDIT_SIGNING_KEY_CREATE = not os.environ.get("ANDROMEDE_AUDIT_SIGNING_KEY")
# The public key audit_verify checks with (default: the signing key's path + ".pub").
AUDIT_VERIFY_KEY = env_str("ANDROMEDE_AUDIT_VERIFY_KEY", "") or None
# Checkpoints are appended here (one signed JSON line each) and logged.
AUDIT_CHECKPOINT_FILE = Path(
    env_str("ANDROMEDE_AUDIT_CHECKPOINT_FILE", str(VAR_DIR / "audit-checkpoints.jsonl"))
)
AUDIT_CHECKPOINT_SECONDS = env_int("ANDROMEDE_AUDIT_CHECKPOINT_SECONDS", 300)

# --- Volume encryption (DESIGN §8, volumes.crypto) -----------------------------------------
# The master key that wraps every tenant's volume key: 32 random bytes, base64. Given in the
# environment (ANDROMEDE_VOLUME_MASTER_KEY), or read from a file (0600, base64); in the
# embedded default (neither configured) the file is made on first use under var/. Never in
# the database: a dump holds tenant keys only wrapped by it.
VOLUME_MASTER_KEY = env_str("ANDROMEDE_VOLUME_MASTER_KEY", "") or None
VOLUME_MASTER_KEY_FILE = Path(
    env_str("ANDROMEDE_VOLUME_MASTER_KEY_FILE", str(VAR_DIR / "volume-master.key"))
)
VOLUME_MASTER_KEY_CREATE = not (
    os.environ.get("ANDROMEDE_VOLUME_MASTER_KEY")
    or os.environ.get("ANDROMEDE_VOLUME_MASTER_KEY_FILE")
)
# Every crypto-shred is also appended here (JSON lines, 0600), outside the database, so a
# restore from an older dump destroys again the keys shredded since (volumes.services.
# shred_ledger). Keep it beside the audit checkpoints, not in the database backups.
SHRED_LEDGER_FILE = Path(
    env_str("ANDROMEDE_SHRED_LEDGER_FILE", str(VAR_DIR / "shred-ledger.jsonl"))
)

# --- Celery (DESIGN §4) -----------------------------------------------------------------------
PRIVATE_REDIS_SOCKET = VAR_DIR / "run" / "redis.sock"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", f"redis+socket://{PRIVATE_REDIS_SOCKET}")


def _cache_url_beside(broker_url: str) -> str | None:
    """The broker's Redis, database 1 (the broker uses 0), as a Django cache URL."""
    if broker_url.startswith("redis+socket://"):
        return f"unix://{broker_url.removeprefix('redis+socket://').split('?')[0]}?db=1"
    if broker_url.startswith(("redis://", "rediss://")):
        scheme, _, rest = broker_url.partition("://")
        host = rest.split("/", 1)[0]
        return f"{scheme}://{host}/1"
    return None


# The shared cache (API throttling counters): Redis, so every API process counts together.
CACHE_URL = env_str("ANDROMEDE_CACHE_URL", "") or _cache_url_beside(CELERY_BROKER_URL)
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
            "KEY_PREFIX": "andromede",
        }
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
CELERY_RESULT_BACKEND = None
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ROUTES = ("iaas.celery.route_task",)
CELERY_BROKER_CONNECTION_TIMEOUT = 5
# Workers log through Django's LOGGING (JSON lines with the request id), not Celery's format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The longest an operation may run: Redis's visibility timeout (a slow task is not delivered
# again while it runs); RabbitMQ's consumer_timeout must be longer (scripts/rabbitmq.conf).
LONGEST_OPERATION_SECONDS = env_int("ANDROMEDE_VISIBILITY_TIMEOUT", 4 * 3600)
# Quorum queues and publisher confirms on RabbitMQ, the visibility timeout on Redis.
_BROKER_CONF = celery_broker_conf(
    CELERY_BROKER_URL, longest_operation_seconds=LONGEST_OPERATION_SECONDS
)
CELERY_BROKER_TRANSPORT_OPTIONS = _BROKER_CONF["broker_transport_options"]
CELERY_BROKER_HEARTBEAT = _BROKER_CONF["broker_heartbeat"]
CELERY_BROKER_HEARTBEAT_CHECKRATE = _BROKER_CONF["broker_heartbeat_checkrate"]
CELERY_TASK_DEFAULT_QUEUE_TYPE = _BROKER_CONF["task_default_queue_type"]
CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = _BROKER_CONF["task_create_missing_queue_type"]
CELERY_TASK_DEFAULT_EXCHANGE_TYPE = _BROKER_CONF["task_default_exchange_type"]
CELERY_TASK_CREATE_MISSING_QUEUE_EXCHANGE_TYPE = _BROKER_CONF[
    "task_create_missing_queue_exchange_type"
]
CELERY_TASK_DEFAULT_DELIVERY_MODE = _BROKER_CONF["task_default_delivery_mode"]
CELERY_WORKER_DETECT_QUORUM_QUEUES = _BROKER_CONF["worker_detect_quorum_queues"]
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "summarise-auth-noise": {
        "task": "tenants.summarise_auth_noise",
        "schedule": 60.0,
    },
    "summarise-refused-reads": {
        "task": "iaas.summarise_refused_reads",
        "schedule": 60.0,
    },
    "audit-checkpoint": {
        "task": "iaas.audit_checkpoint",
        "schedule": float(AUDIT_CHECKPOINT_SECONDS),
    },
    "purge-expired-idempotency-records": {
        "task": "iaas.purge_idempotency_records",
        "schedule": 3600.0,
    },
    "host-heartbeats": {
        "task": "hosts.heartbeats",
        "schedule": float(HOST_HEARTBEAT_SECONDS),
    },
    "reconcile-hosts": {
        "task": "compute.reconcile",
        "schedule": float(env_int("ANDROMEDE_RECONCILE_SECONDS", 60)),
    },
    "reconcile-volumes": {
        "task": "volumes.reconcile",
        "schedule": float(env_int("ANDROMEDE_RECONCILE_SECONDS", 60)),
    },
    "reconcile-networks": {
        "task": "network.reconcile",
        "schedule": float(env_int("ANDROMEDE_NETWORK_RECONCILE_SECONDS", 60)),
    },
    "refresh-consoles": {
        "task": "compute.console_refresh",
        "schedule": float(CONSOLE_REFRESH_SECONDS),
    },
    "resend-host-onboardings": {
        "task": "hosts.onboarding_resend",
        "schedule": 60.0,
    },
    "sweep-operations": {
        "task": "operations.sweep",
        "schedule": 30.0,
    },
    "expire-stuck-uploads": {
        "task": "images.expire_uploads",
        "schedule": 60.0,
    },
    "expire-exports": {
        "task": "images.expire_exports",
        "schedule": 300.0,
    },
    "purge-old-signin-attempts": {
        "task": "tenants.purge_signin_attempts",
        "schedule": 3600.0,
    },
}
# The readiness probe gives the broker this long to answer.
READINESS_TIMEOUT_SECONDS = 3

# --- Logging: JSON lines, each carrying the request id ---------------------------------------
LOG_LEVEL = env_str("ANDROMEDE_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "iaas.logging.RequestIdFilter"},
        "redact": {"()": "iaas.logging.RedactSecretsFilter"},
    },
    "formatters": {"json": {"()": "iaas.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Each audit checkpoint is logged, whatever the level, so that the log shipper keeps
        # a copy of it off this machine (review M2).
        "iaas.audit.checkpoints": {"level": "INFO"},
        # So is each line of the shred ledger (a restore needs it: volumes.services.shred_ledger).
        "volumes.services.shred_ledger": {"level": "INFO"},
    },
}
