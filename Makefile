# Two commands on a fresh machine:  make fit   /   make test
# Both create the virtual environment (.venv, Python >= 3.12) if it is missing.
PYTHON ?= python3.12
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: fit test lint typecheck docs bench results many finite-sim compare segmented flavour clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null || { \
	  echo "error: '$(PYTHON)' is missing or older than 3.12; PyMC 6 needs Python >= 3.12." >&2; \
	  echo "       With pyenv: 'pyenv install 3.12' (.python-version selects it), or run 'make PYTHON=/path/to/python3.12 ...'." >&2; \
	  exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c 'import sys; assert sys.version_info >= (3, 12), sys.version'
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# The main job: MAP + NUTS + report on the embedded toy dataset (default priors) into
# results/run/, which git ignores (a newcomer's checkout stays clean; the same run as the
# committed results/default)
fit: $(STAMP)
	$(BIN)/diffuse-fit sample --prior default --seed 1 --report --out results/run

# The committed reference runs: results/default/ (default priors) and results/flat/ (flat priors)
results: $(STAMP)
	$(BIN)/diffuse-fit sample --prior default --seed 1 --report --out results/default
	$(BIN)/diffuse-fit sample --prior flat --seed 1 --report --out results/flat

# The many-fit results on the embedded toy dataset: results/scan, results/toys, results/sbc
# (journals beside them make a rerun compute only what is missing)
many: $(STAMP)
	$(BIN)/diffuse-fit scan --prior flat --param astro_gamma=2.4:4.0:61 --param astro_norm=3:15:41 \
	  --run results/flat --out results/scan
	$(BIN)/diffuse-fit toys --prior flat --n 1000 --seed 1 --out results/toys
	$(BIN)/diffuse-fit toys --prior flat --n 300 --seed 2 --nuts --out results/toys_nuts
	$(BIN)/diffuse-fit sbc --prior default --n 500 --seed 1 --out results/sbc
	$(MAKE) finite-sim

# Poisson vs SAY coverage when each fit sees only a 10,000-event simulation: results/finite_sim
finite-sim: $(STAMP)
	$(BIN)/diffuse-fit toys --prior flat --n 500 --seed 3 --resample-sim 10000 --likelihood poisson \
	  --out results/finite_sim/poisson
	$(BIN)/diffuse-fit toys --prior flat --n 500 --seed 3 --resample-sim 10000 --likelihood say \
	  --out results/finite_sim/say
	$(BIN)/python scripts/compare_coverage.py results/finite_sim/poisson results/finite_sim/say \
	  --out results/finite_sim/coverage_poisson_vs_say

# Is the astrophysical spectrum a single power law? spl vs logparabola vs broken on the default
# toy (a single power law) and on the broken-power-law toy: results/compare_default, compare_broken
compare: $(STAMP)
	$(BIN)/diffuse-fit compare --seed 1 --out results/compare_default
	$(BIN)/diffuse-fit compare --toy broken --seed 1 --out results/compare_broken

# The segmented (differential) flux on both toys, E^-2 in 5 segments of 60 TeV - 10 PeV: does it
# recover the injected single (E^-3) and broken power law? results/segmented_default, _broken
segmented: $(STAMP)
	$(BIN)/diffuse-fit sample --astro-model segmented --seed 1 --report --out results/segmented_default
	$(BIN)/diffuse-fit sample --astro-model segmented --toy broken --seed 1 --report \
	  --out results/segmented_broken

# The flavour composition on the flavour toy (the default toy's spectrum, all nu_mu at Earth):
# NUTS with its ternary figure (results/flavour), the profile likelihood over the simplex
# (results/flavour_scan) and the coverage of the (f_e, f_mu) regions in 300 pseudo-experiments
# (results/flavour_toys)
flavour: $(STAMP)
	$(BIN)/diffuse-fit sample --toy flavour --astro-model flavour --seed 1 --report --out results/flavour
	$(BIN)/diffuse-fit scan --toy flavour --astro-model flavour --param f_e=0:1:41 --param f_mu=0:1:41 \
	  --run results/flavour --out results/flavour_scan
	$(BIN)/diffuse-fit toys --toy flavour --astro-model flavour --n 300 --seed 1 --out results/flavour_toys

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check model scripts tests
	$(BIN)/ruff format --check model scripts tests
	$(MAKE) --no-print-directory typecheck
	$(BIN)/lint-imports

# mypy on the NumPy core (pyproject.toml [tool.mypy]); model/ is checked as diffuse_fit
typecheck: $(STAMP)
	mkdir -p $(VENV)/typecheck && ln -sfn $(CURDIR)/model $(VENV)/typecheck/diffuse_fit
	MYPYPATH=$(VENV)/typecheck $(BIN)/mypy -p diffuse_fit.io -p diffuse_fit.physics \
	  -p diffuse_fit.binned -p diffuse_fit.fitting -p diffuse_fit.errors

# The documentation (docs/_build/html/index.html): warnings are errors; the tutorial
# (docs/tutorial/workshop.md) is executed at every build
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,docs]'
	@touch $@

docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "wrote docs/_build/html/index.html"

bench: $(STAMP)
	$(BIN)/pip install --quiet 'emcee>=3.1'
	$(BIN)/python scripts/benchmark.py
	$(BIN)/python scripts/benchmark_jobs.py
	$(BIN)/python scripts/benchmark_vs_emcee.py
	$(BIN)/python scripts/benchmark_many.py

clean:
	rm -rf $(VENV)
