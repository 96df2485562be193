# gk — development and CI entry points (GNU make).
#
#   make run    set up .venv, initialise a development instance in ./var, run it
#   make test   set up .venv, then lint, type-check and run the whole test suite
#   make lint   ruff check, ruff format --check, mypy
#   make clean  remove .venv and caches (./var, your development data, is kept)
#
# Needs only Python 3.11+ and make; Debian packages listed in APT_PACKAGES
# are installed when missing (as root) before anything else.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Written after a successful install; pyproject.toml being newer re-installs.
STAMP := $(VENV)/.gk-installed

# The development instance of `make run`.
CONFIG := ./var/gk.toml
DOMAIN := example.test
DEV_HOSTNAME := localhost
ADMIN := admin@$(DOMAIN)
GK := $(BIN)/gk --config $(CONFIG)

# Debian packages the build or the tests need, installed by `apt-deps` when
# missing and when running as root: chromium (and a font) for the browser
# tests of the web UI, which Playwright drives through its own driver.
APT_PACKAGES := chromium fonts-dejavu-core

# `make test` runs the storage tests on PostgreSQL too when this server
# answers (and GK_TEST_DATABASE_URL is not set already).
PG_TEST_URL := postgresql+psycopg://postgres@127.0.0.1:5432/test

PYTEST_ARGS ?=
# Test processes (pytest-xdist): the suite is mostly CPU-bound, one per core.
PYTEST_WORKERS ?= 2

.PHONY: help run test lint pytest install venv apt-deps clean

help:
	@echo "make run    - initialise ./var (first time) and run gk in the foreground"
	@echo "make test   - lint, type-check and run the test suite"
	@echo "make lint   - ruff check, ruff format --check, mypy"
	@echo "make clean  - remove .venv and caches (keeps ./var)"

# --- set-up -------------------------------------------------------------------

apt-deps:
	@if [ -z "$(strip $(APT_PACKAGES))" ]; then exit 0; fi; \
	if ! command -v dpkg-query >/dev/null; then \
		echo "apt-deps: not a Debian system; make sure these are installed: $(APT_PACKAGES)" >&2; \
		exit 0; \
	fi; \
	missing=""; \
	for package in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$package" 2>/dev/null | grep -q "install ok installed" \
			|| missing="$$missing $$package"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "apt-deps: installing$$missing"; \
		apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "apt-deps: missing Debian packages:$$missing (run: sudo apt-get install$$missing)" >&2; \
	fi

$(BIN)/pip:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "gk needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version 2>&1)" >&2; exit 1; }
	@rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "could not create $(VENV); on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }

venv: $(BIN)/pip

# compat editable mode puts the repository root on sys.path, which is how
# twistd finds twisted/plugins/gk_plugin.py.
$(STAMP): pyproject.toml | $(BIN)/pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-e '.[test]' --config-settings editable_mode=compat
	@touch $@

install: apt-deps $(STAMP)

# vdirsyncer (tests/dav/test_vdirsyncer.py runs it) lives in a virtualenv of
# its own: its dependency requests pulls in urllib3, whose files would
# overwrite the urllib3 package that urllib3-future (niquests, used by
# caldav) installs in .venv.
VDIRSYNCER_VENV := .venv-vdirsyncer
VDIRSYNCER := $(VDIRSYNCER_VENV)/bin/vdirsyncer

$(VDIRSYNCER):
	@rm -rf $(VDIRSYNCER_VENV)
	$(PYTHON) -m venv $(VDIRSYNCER_VENV)
	$(VDIRSYNCER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		'vdirsyncer>=0.21,<0.22'

# --- run ----------------------------------------------------------------------

# Prints where the instance of $(CONFIG) listens, from the config itself.
define SHOW_URLS
import sys
from gk.config import load_config
from gk.service import PROTOCOLS

config = load_config(sys.argv[1])
names = {
    ("smtp", False): "SMTP (MX inbound)",
    ("submission", False): "Submission (STARTTLS)",
    ("submission", True): "Submissions (implicit TLS)",
    ("imap", False): "IMAP (STARTTLS)",
    ("imap", True): "IMAPS (implicit TLS)",
    ("http", False): "HTTP",
    ("http", True): "HTTPS",
}

def where(desc):
    kind, _, rest = desc.partition(":")
    if kind not in ("tcp", "tcp6", "ssl"):
        return desc
    args = rest.split(":")
    port = next((a for a in args if "=" not in a), "")
    options = dict(a.split("=", 1) for a in args if "=" in a)
    port = options.get("port", port)
    host = options.get("interface", "0.0.0.0" if kind == "tcp" else "::")
    return f"{host}:{port}"

print()
print(f"gk for {', '.join(config.server.domains) or config.server.hostname} ({config.path})")
for role, desc, tls in config.listeners():
    address = where(desc)
    later = "" if role in PROTOCOLS else "   (served from a later version)"
    if role == "http":
        scheme = "https" if tls else "http"
        print(f"  {names[role, tls]:<28} {scheme}://{address}/{later}")
        for path in ("dav/", "health", "ready", "metrics"):
            print(f"  {'':<28} {scheme}://{address}/{path}")
    else:
        print(f"  {names[role, tls]:<28} {address}{later}")
print()
endef
export SHOW_URLS

run: install
	$(GK) init --dev --domain $(DOMAIN) --hostname $(DEV_HOSTNAME)
	@if $(GK) user list | awk -v email='$(ADMIN)' '$$1 == email { found = 1 } END { exit !found }'; then \
		echo "admin account: $(ADMIN) (exists; its password was printed when it was created;" \
			"'$(GK) user passwd $(ADMIN)' sets a new one)"; \
	else \
		$(GK) user add '$(ADMIN)' --admin; \
		echo "^ the password of $(ADMIN): it is printed only this once"; \
	fi
	@$(BIN)/python -c "$$SHOW_URLS" $(CONFIG)
	exec $(BIN)/twistd -n --pidfile= gk --config $(CONFIG)

# --- checks -------------------------------------------------------------------

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

define PG_PROBE
import sys
import psycopg
url = sys.argv[1].replace("postgresql+psycopg://", "postgresql://", 1)
try:
    psycopg.connect(url, connect_timeout=2).close()
except Exception:
    sys.exit(1)
endef
export PG_PROBE

pytest: install $(VDIRSYNCER)
	@if [ -z "$${GK_TEST_DATABASE_URL:-}" ]; then \
		if $(BIN)/python -c "$$PG_PROBE" '$(PG_TEST_URL)'; then \
			export GK_TEST_DATABASE_URL='$(PG_TEST_URL)'; \
			echo "PostgreSQL answers: GK_TEST_DATABASE_URL=$(PG_TEST_URL)"; \
		else \
			echo "no PostgreSQL on 127.0.0.1:5432: database tests run on SQLite only"; \
		fi; \
	fi; \
	set -x; \
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint pytest

# --- clean-up -----------------------------------------------------------------

clean:
	rm -rf $(VENV) $(VDIRSYNCER_VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -f twisted/plugins/dropin.cache
	find . -name __pycache__ -type d -not -path './var/*' -prune -exec rm -rf {} +
	@echo "kept ./var (the development instance); rm -rf var to start it afresh"
