# Andromède — the README's two commands and their helpers.
#   make run    set up this machine (as root on Debian 12) and run the control plane
#   make test   set up, then lint, type-check and run the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help run test lint pytest setup setup-test lock reset-demo clean

help:
	@echo "make run         install what is missing, migrate, create the demo, run API + worker + beat"
	@echo "make test        install what is missing, start PostgreSQL/Redis if needed, lint and test"
	@echo "make lint        ruff, ruff format --check, mypy, ansible-lint, manage.py check, makemigrations --check"
	@echo "make reset-demo  new demo passwords and a new demo API token"
	@echo "make lock        regenerate requirements.lock from pyproject.toml"

run:
	@scripts/setup.sh run
	@scripts/run.sh

test:
	@scripts/setup.sh test
	@scripts/test.sh

lint:
	@scripts/test.sh --lint-only

reset-demo:
	@scripts/setup.sh run
	@.venv/bin/python manage.py bootstrap_demo --reset

lock:
	@scripts/lock.sh

clean:
	rm -rf .venv var .mypy_cache .ruff_cache .pytest_cache .hypothesis

# The tiny bootable guest image of the hypervisor test lane (cached under var/images/,
# rebuilt only when its recipe changes); see scripts/build-test-image.sh.
.PHONY: test-image
test-image:
	@scripts/build-test-image.sh
