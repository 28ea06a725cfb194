# ALTKRAFT On-Premise — developer entry points. `make run` and `make test` are all you need.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DATA   ?= ./altkraft-data
export ALTKRAFT_DATA_DIR ?= $(DATA)

.PHONY: run setup python-deps frontend translations extract-messages docs test test-sqlite test-postgres system-deps lint installer-binary

## Install everything the appliance needs and start it on its embedded defaults (SQLite + SQLite queue).
run: setup
	$(BIN)/altkraft run --migrate

setup: python-deps frontend translations

python-deps: $(BIN)/altkraft
$(BIN)/altkraft: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

frontend: altkraft_onprem/web/static/vendor/.built
altkraft_onprem/web/static/vendor/.built: package.json package-lock.json frontend/build.mjs
	npm ci --no-audit --no-fund --ignore-scripts
	npm run build
	touch $@

translations: python-deps
	@if ls altkraft_onprem/translations/*/LC_MESSAGES/messages.po >/dev/null 2>&1; then \
	  $(BIN)/pybabel compile -d altkraft_onprem/translations -f 2>&1 | tail -n 1; fi

## For translators: refresh translations/messages.pot from the code and merge it into every
## language's messages.po (new msgids arrive empty; see docs/translations.md).
# altkraft_onprem/i18n.py KEYWORDS: lazy markers and the error classes whose message is a msgid.
BABEL_KEYWORDS = _l lazy_gettext ServiceError NotFound Conflict Forbidden TooManyRequests \
  DataFetchError ArchiveError SheetError FieldError:2 Refused Unreachable

extract-messages: python-deps
	$(BIN)/pybabel extract -F babel.cfg $(addprefix -k ,$(BABEL_KEYWORDS)) --project "ALTKRAFT On-Premise" \
	  --copyright-holder ALTKRAFT --no-wrap --sort-by-file -o altkraft_onprem/translations/messages.pot .
	$(BIN)/pybabel update -i altkraft_onprem/translations/messages.pot -d altkraft_onprem/translations \
	  --no-wrap --no-fuzzy-matching --ignore-obsolete

## Regenerate the generated docs: CLI reference, roles & permissions table, settings reference.
docs: python-deps
	$(BIN)/python -m altkraft_onprem.cli_docs > docs/cli.md
	$(BIN)/python -m altkraft_onprem.access.docs docs/admin.md
	$(BIN)/altkraft config docs > docs/configuration.md

## Debian packages the tests drive: Chromium (browser tests), Postfix's smtp-sink/smtp-source (benchmarks),
## Dovecot (a real IMAP server for inbound mail's mailbox polling), SpamAssassin's spamd (pre-send spam score).
system-deps:
	@command -v chromium >/dev/null && command -v smtp-sink >/dev/null && command -v wrk >/dev/null \
	  && command -v dovecot >/dev/null && { command -v spamd || test -x /usr/sbin/spamd; } >/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium postfix wrk \
	    dovecot-imapd spamassassin spamd >/dev/null; }

## The one-file `altkraft-install` IT copies onto a host (PyInstaller, about 75 s of CPU);
## `make test` builds it once and tests/installer/test_binary.py runs it.
INSTALLER_BINARY = dist/altkraft-install
installer-binary: $(INSTALLER_BINARY)
$(INSTALLER_BINARY): $(BIN)/altkraft installer/altkraft-install.spec $(wildcard installer/*.py systemd/*) \
		$(shell find altkraft_onprem -name '*.py' -not -path '*/__pycache__/*')
	$(BIN)/pyinstaller --noconfirm --clean --log-level WARN --distpath dist \
	  --workpath build/pyinstaller installer/altkraft-install.spec

## Install everything, check the layers (docs/architecture.md), then run the whole suite twice at
## once: SQLite + SQLite queue, and Postgres + Redis queue. The two runs share nothing (own
## databases, queue names, ports, temporary folders) and much of each is waiting on subprocesses,
## servers and Chromium, so on two cores together they take little more than the longer one.
## Each run's output is printed whole when it ends.
test: setup system-deps installer-binary
	$(BIN)/lint-imports
	$(MAKE) -j2 --output-sync=target test-sqlite test-postgres \
	  AKTEST_INSTALLER_BINARY=$(CURDIR)/$(INSTALLER_BINARY)

test-sqlite:
	AKTEST_DB=sqlite AKTEST_QUEUE=sqlite AKTEST_INSTALLER_BINARY=$(AKTEST_INSTALLER_BINARY) \
	  $(BIN)/python -m pytest -q -p no:cacheprovider

test-postgres:
	AKTEST_DB=postgres AKTEST_QUEUE=redis AKTEST_INSTALLER_BINARY=$(AKTEST_INSTALLER_BINARY) \
	  $(BIN)/python -m pytest -q -p no:cacheprovider

lint:
	$(BIN)/ruff check altkraft_onprem installer tests bench
	$(BIN)/lint-imports
