# Set-up and entry points. `make demo` and `make test` create .venv/ and install the pinned stack on
# first use (scripts/install.sh; the one-time mmcv build takes ~15-25 minutes on 2 cores).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tasknas-installed
# One BLAS/OpenMP thread: faster and steadier for these small CPU runs on a shared machine.
export OMP_NUM_THREADS ?= 1

.PHONY: install demo test lint bench clean-demo

$(STAMP): scripts/install.sh requirements/constraints.txt requirements/stack.txt setup.py
	bash scripts/install.sh
	touch $(STAMP)

install: $(STAMP)

# DEMO=detnas (default): DetNAS backbone search inside MMDetection; DEMO=nasfpn / bifpn: neck search;
# DEMO=joint: backbone + neck in one arch; DEMO=seg: segmentation in MMSegmentation; DEMO=core: the core alone.
DEMO ?= detnas
demo: $(STAMP)
	$(PY) -m tasknas.cli demo $(DEMO) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q tests $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check tasknas tests benchmarks

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-demo:
	rm -rf demo_out
