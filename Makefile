# Two entry points: `make demo` and `make test`. Each builds .venv from pyproject.toml first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint scenarios clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cartpk demo --out results/ --force

# Re-run every example scenario (and the anti-VEGF schedule optimisation) into docs/scenario_results/.
EXAMPLES := blood_vs_solid combinations anti_vegf_window hyaluronidase_subgroups delivery_route
scenarios: $(STAMP)
	for name in $(EXAMPLES); do \
		$(BIN)/cartpk simulate scenarios/$$name.toml --out docs/scenario_results/$$name --force || exit 1; \
	done
	$(BIN)/cartpk optimize scenarios/anti_vegf_window.toml \
		--out docs/scenario_results/anti_vegf_window_optimum --force

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) results
