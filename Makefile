# Two entry points on a fresh Debian machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Installs are reproducible: every package version comes from constraints.txt (the tested set).
CONSTRAINTS := constraints.txt
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(CONSTRAINTS) | cksum | cut -d' ' -f1)
ARGS   ?=
LOCK_VENV := .lock-venv

.PHONY: run serve gui test test-fast bench screenshots package sysdeps lock clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@sh packaging/sysdeps.sh venv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

## run: set up and start callsync (the window when a display is available, else headless serve)
run: $(STAMP)
	@sh packaging/sysdeps.sh gui
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] || [ "$$(uname)" = Darwin ]; then \
		exec $(BIN)/callsync gui $(ARGS); \
	else \
		echo "no display: starting headless (callsync serve)"; exec $(BIN)/callsync serve $(ARGS); \
	fi

serve: $(STAMP)
	$(BIN)/callsync serve $(ARGS)

gui: $(STAMP)
	$(BIN)/callsync gui $(ARGS)

## test: set up and run the whole suite (unit, integration on loopback, crash, GUI offscreen)
test: $(STAMP)
	@sh packaging/sysdeps.sh test
	CALLSYNC_TEST_POSTGRES=required QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

## bench: receiver and sync benchmarks (prints ratios measured in one run)
bench: $(STAMP)
	@sh packaging/sysdeps.sh bench
	$(BIN)/python bench/run.py $(ARGS)

## package: the installer artefacts for this machine into dist/ (Linux: one-folder build and .deb)
package: $(STAMP)
	@sh packaging/sysdeps.sh gui
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[package]'
	$(BIN)/python packaging/build.py

## screenshots: render every tab with realistic data into docs/screenshots/
screenshots: $(STAMP)
	@sh packaging/sysdeps.sh test
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m tools.screenshots docs/screenshots

## lock: refresh constraints.txt with the newest versions pyproject.toml allows (resolved in a scratch
## venv), then run `make test` and commit constraints.txt with the change that needed it
lock:
	@sh packaging/sysdeps.sh venv
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q -e '.[test,package]'
	{ echo "# Tested versions for make run / make test (pip install -c constraints.txt). Refresh: make lock"; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)
	@echo "constraints.txt refreshed; run make test before committing it"

clean:
	rm -rf $(VENV) $(LOCK_VENV) build dist *.egg-info .pytest_cache .hypothesis
