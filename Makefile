# migrc-bench: a new user needs only `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow bench install clean ci-run ci-check ci-baseline plot reproduce reproduce-thp sensitivity \
        reproduce-scaling

# The harness gates itself: configs/ci.toml (a small generated XSBench trace, 4 CPUs) replayed
# with four engines, checked against the committed baseline with configs/ci-thresholds.toml.
CI_CONFIG     := configs/ci.toml
CI_ENGINES    := baseline,migrc,luf,nobatch
CI_OUT        := results/ci
CI_BASELINE   := benchmarks/ci-baseline.json
CI_THRESHOLDS := configs/ci-thresholds.toml

# The package's bytecode, as pip leaves any installed package (an editable install has none, and
# with PYTHONDONTWRITEBYTECODE set Python never writes it: each run would compile every module
# it imports from source, ~0.1 s of a CLI call). Stale files are recompiled in memory, so this
# only saves time.
BYTECODE := $(BIN)/python -m compileall -q migrc_bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BYTECODE)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/migrc-bench compare --out results/demo
	$(BIN)/migrc-bench plot results/demo -o results/demo/compare.png
	@echo "plot: results/demo/compare.png"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BYTECODE)
	$(BIN)/python benchmarks/run.py

ci-run: $(STAMP)
	$(BIN)/migrc-bench compare --config $(CI_CONFIG) --engines $(CI_ENGINES) --out $(CI_OUT) \
	    --only-changed --counters 'nr_tlb_*,itlb_*,dtlb_*_misses,pg*,runtime_s,migrc_*,luf_*'

# exit 1 on a regression, or (--strict) when the baseline no longer matches the config/trace
ci-check: ci-run
	$(BIN)/migrc-bench check $(CI_OUT) --baseline $(CI_BASELINE) --thresholds $(CI_THRESHOLDS) \
	    --engines $(CI_ENGINES) --strict

# after a deliberate change of the model, config or trace: record a new baseline, commit it
ci-baseline: ci-run
	$(BIN)/migrc-bench check $(CI_OUT) --engines $(CI_ENGINES) --write-baseline $(CI_BASELINE)

# timelines and the key deltas of the last CI run (made first if missing)
plot: $(STAMP)
	test -f $(CI_OUT)/runs.parquet || $(MAKE) ci-run
	$(BIN)/migrc-bench plot $(CI_OUT) -o $(CI_OUT)/compare.png --engines $(CI_ENGINES)

reproduce: $(STAMP)
	$(BIN)/python -m migrc_bench.reproduce --out results

# the same machines with memory.thp = "always" (docs/reproduction.md, THP section)
reproduce-thp: $(STAMP)
	$(BIN)/python -m migrc_bench.reproduce --thp --out results

# the seed's machine at s = 1/100, 1/30, 1/10, 1/3 and 1 (configs/scaling.toml): baseline, migrc
# and nobatch, one point at a time, niced; hours at s = 1 (docs/reproduction.md, "Scaling
# study"); resumes where it stopped. Table and plot: results/scaling/scaling.{md,png}
reproduce-scaling: $(STAMP)
	nice -n 10 $(BIN)/python -m migrc_bench.scaling_study --out results/scaling

# the reproduction's headline changes with each calibrated knob at x0.5 and x2 (one run at a
# time, ~1.5 h; resumes where it stopped)
sensitivity: $(STAMP)
	$(BIN)/python -m migrc_bench.sensitivity --out results/sensitivity

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
