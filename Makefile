# Two entry points on a fresh Debian machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
ARGS   ?=

.PHONY: run serve gui test test-fast bench screenshots sysdeps clean

$(STAMP): pyproject.toml
	@sh packaging/sysdeps.sh venv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
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
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

## bench: receiver and sync benchmarks (prints ratios measured in one run)
bench: $(STAMP)
	@sh packaging/sysdeps.sh bench
	$(BIN)/python bench/run.py $(ARGS)

## screenshots: render every tab with realistic data into docs/screenshots/
screenshots: $(STAMP)
	@sh packaging/sysdeps.sh test
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m gui.screenshots docs/screenshots

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
