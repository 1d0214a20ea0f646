#!/usr/bin/env bash
# messages.sh — bring the portal's French catalogue (portal/locale/fr/LC_MESSAGES/django.po)
# up to date with every string the code and templates mark for translation, then compile it.
# New strings arrive untranslated: translate them (tests/portal/test_translations.py fails
# while any French string is missing or fuzzy).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
mkdir -p portal/locale
"$VENV/bin/python" manage.py makemessages --locale fr --no-location --no-obsolete \
    --ignore '.venv/*' --ignore 'var/*' --ignore 'tests/*' --ignore 'bench/*' \
    --ignore 'scripts/*' --ignore 'docs/*' --ignore 'ansible/*' >/dev/null
# The creation date would change the file on every run: it is not kept.
sed -i "/^\"POT-Creation-Date:/d" portal/locale/fr/LC_MESSAGES/django.po
"$VENV/bin/python" manage.py compilemessages --locale fr --ignore '.venv/*' >/dev/null
msgfmt --statistics --output-file=/dev/null portal/locale/fr/LC_MESSAGES/django.po
