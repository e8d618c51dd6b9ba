# Two commands matter: `make serve` and `make test`. Everything else is set up on demand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8866
TOKEN  ?=
CULL_AFTER ?=
SANDBOX_HOME ?= $(CURDIR)
export SANDBOX_HOME

.PHONY: serve test lint format bench install chromium isolation clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's Chromium (no browser download is possible here).
chromium:
	@test -x /usr/bin/chromium || { \
		echo "Installing chromium with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Jobs run in a bubblewrap jail (issue 8); unshare + setpriv (util-linux) is the fallback.
# Without root (or apt-get) it warns and goes on: jobs then get the strongest isolation left
# (`sandbox-kit doctor` says which), and SANDBOX_ISOLATION=required refuses to run them.
isolation:
	@test -x /usr/bin/bwrap || { \
		echo "Installing bubblewrap with apt-get"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } \
		|| echo "Warning: could not install bubblewrap; see 'sandbox-kit doctor'"; }

serve: $(STAMP) isolation
	$(BIN)/sandbox-kit serve --host $(HOST) --port $(PORT) $(if $(TOKEN),--token $(TOKEN)) \
		$(if $(CULL_AFTER),--cull-after $(CULL_AFTER))

lint: $(STAMP)
	$(BIN)/ruff check sandbox_kit tests bench models/examples
	$(BIN)/ruff format --check sandbox_kit tests bench models/examples
	$(BIN)/mypy

test: $(STAMP) chromium isolation lint
	$(BIN)/python -m pytest

format: $(STAMP)
	$(BIN)/ruff format sandbox_kit tests bench
	$(BIN)/ruff check --fix sandbox_kit tests bench

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
