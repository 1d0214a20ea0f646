"""The dependency rule of DESIGN §1: `iaas` ← `tenants` ← `hosts` ← `operations` ← `images`,
`network` ← `volumes` ← `compute` ← `portal`, and `hypervisor/` imports nothing of the
project. Imports are banned by one ruff.toml per app folder; this module checks that those
bans say exactly what the arrow says (and that ruff really refuses such an import), and that
no model relation — foreign key, one-to-one, many-to-many, or a `get_model` string — points
against the arrow."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"
#: Lower layers first; apps of one layer are siblings and may not import each other.
LAYERS: list[set[str]] = [
    {"iaas"},
    {"tenants"},
    {"hosts"},
    {"operations"},
    {"images", "network"},
    {"volumes"},
    {"compute"},
    {"portal"},
]
PROJECT_APPS = set().union(*LAYERS)
#: What each app may import: every app of a lower layer.
MAY_USE = {app: set().union(*LAYERS[:index]) for index, layer in enumerate(LAYERS) for app in layer}
#: The app folders that exist (volumes comes with its issue).
APP_DIRS = sorted(app for app in PROJECT_APPS if (ROOT / app / "apps.py").exists())


def _banned(folder: str) -> set[str]:
    config = tomllib.loads((ROOT / folder / "ruff.toml").read_text())
    return set(config["lint"]["flake8-tidy-imports"]["banned-api"])


@pytest.mark.parametrize("app", [a for a in APP_DIRS if a != "portal"])
def test_each_apps_ruff_config_bans_exactly_the_apps_above_it(app: str) -> None:
    assert _banned(app) == PROJECT_APPS - MAY_USE[app] - {app}


def test_the_hypervisor_boundary_bans_django_and_every_app() -> None:
    assert _banned("hypervisor") == PROJECT_APPS | {"django", "rest_framework"}


def test_the_installed_apps_follow_the_arrow() -> None:
    """settings.INSTALLED_APPS lists the project's apps lower layers first."""
    installed = [config.name for config in apps.get_app_configs() if config.name in PROJECT_APPS]
    layer_of = {app: index for index, layer in enumerate(LAYERS) for app in layer}
    assert installed == sorted(installed, key=layer_of.__getitem__)
    assert set(installed) == set(APP_DIRS)


@pytest.mark.parametrize(
    ("path", "source", "banned"),
    [
        ("network/probe.py", "from compute.models import Instance\n", "compute"),
        ("images/probe.py", "import network.models\n", "network"),
        (
            "hosts/services/probe.py",
            "def f() -> None:\n    from operations import registry\n",
            "operations",
        ),
        ("iaas/probe.py", "from tenants.models import Tenant\n", "tenants"),
        ("hypervisor/libvirt/probe.py", "from hosts import naming\n", "hosts"),
    ],
)
def test_ruff_refuses_an_import_against_the_arrow(path: str, source: str, banned: str) -> None:
    """The lint rule is live: the same source passes in an app allowed to import it."""
    result = subprocess.run(
        [str(RUFF), "check", "--select", "TID251", "--stdin-filename", path, "-"],
        input=source, capture_output=True, text=True, cwd=ROOT, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"`{banned}` is banned" in result.stdout
    allowed = subprocess.run(
        [str(RUFF), "check", "--select", "TID251", "--stdin-filename", "portal/probe.py", "-"],
        input=source, capture_output=True, text=True, cwd=ROOT, check=False, timeout=60,
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stdout


def _relations() -> list[tuple[str, str, str]]:
    """(model, field, related app) of every forward relation of the project's models."""
    found = []
    for model in apps.get_models(include_auto_created=True):
        app = model._meta.app_label
        if app not in PROJECT_APPS:
            continue
        for field in model._meta.get_fields():
            if field.is_relation and not field.auto_created:  # forward FK, one-to-one, m2m
                related = field.related_model
                if related is not None:
                    found.append((model._meta.label, field.name, related._meta.app_label))
    return found


def test_the_models_relate_only_along_the_arrow() -> None:
    relations = _relations()
    assert len(relations) > 20  # the walk sees the project's relations
    against = [
        f"{model}.{field} → {target}"
        for model, field, target in relations
        if target in PROJECT_APPS
        and target != model.split(".")[0]
        and target not in MAY_USE[model.split(".")[0]]
    ]
    assert against == []


def test_a_port_names_its_device_by_id_not_by_a_foreign_key() -> None:
    port = apps.get_model("network", "Port")
    assert not port._meta.get_field("device_id").is_relation
    assert ("network.Port", "device_id", "compute") not in _relations()


GET_MODEL = re.compile(r"""get_model\(\s*["'](\w+)["']\s*(?:,\s*["'](\w+)["']|\.)""")
MODEL_STRING = re.compile(
    r"""(?:ForeignKey|OneToOneField|ManyToManyField)\(\s*["'](\w+)\.\w+["']"""
)


def test_no_model_string_in_app_code_names_an_app_above() -> None:
    """`apps.get_model("compute", …)` or a lazy "compute.Instance" reference would bypass
    both the import ban and the relation walk's view of the code."""
    against = []
    for app in APP_DIRS:
        for source in (ROOT / app).rglob("*.py"):
            if "migrations" in source.parts:
                continue  # historical models: the migration graph, not the code
            text = source.read_text()
            for pattern in (GET_MODEL, MODEL_STRING):
                for match in pattern.finditer(text):
                    target = match.group(1)
                    if target in PROJECT_APPS and target != app and target not in MAY_USE[app]:
                        against.append(f"{source.relative_to(ROOT)}: {match.group(0)}")
    assert against == []
