"""French is the portal's first language: every string the code and templates mark for
translation has a French translation in the committed catalogue, checked the way the issue
asks (`msgfmt --statistics`) on a catalogue freshly extracted from the code."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from django.core.management import call_command

from operations import registry
from portal import labels

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = Path("portal/locale/fr/LC_MESSAGES/django.po")


APPS = ("iaas", "tenants", "hosts", "operations", "images", "network", "volumes", "compute",
        "portal")  # fmt: skip


def test_every_french_string_is_translated(tmp_path, settings, monkeypatch):
    # makemessages writes into the catalogue of the tree it runs in: it runs in a copy of the
    # apps (with the committed catalogue), so the check sees what the code marks today merged
    # into what is committed (a new string arrives untranslated), and the checkout is left
    # untouched.
    source = tmp_path / "src"
    for app in APPS:
        shutil.copytree(
            ROOT / app, source / app, ignore=shutil.ignore_patterns("__pycache__", "*.mo")
        )
    settings.LOCALE_PATHS = [source / "portal" / "locale"]
    monkeypatch.chdir(source)
    call_command("makemessages", locale=["fr"], no_location=True, no_obsolete=True, verbosity=0)
    extracted = source / CATALOGUE
    statistics = subprocess.run(
        ["msgfmt", "--statistics", "--output-file=/dev/null", str(extracted)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stderr  # fmt: skip
    advice = f"{statistics.strip()}: run scripts/messages.sh, translate the new strings"
    assert "untranslated" not in statistics, advice
    assert "fuzzy" not in statistics, advice


def test_every_operation_has_words_in_the_portal():
    actions = set(registry.action_names())
    assert actions, "no action registered"
    assert actions <= set(labels.ACTION), sorted(actions - set(labels.ACTION))
