# Two commands for a newcomer: `make demo` (the main job) and `make test` (the test suite).
# Both create or reuse .venv and install what they need; torch is pinned to the CPU build
# through requirements/constraints.txt.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
RUNS   ?= runs
DEMO   := $(RUNS)/demo
DENSE  := $(RUNS)/demo-dense
QAT_ARGS ?= --epochs 1 --n-train 1024

.PHONY: venv demo test test-all lint clean

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c requirements/constraints.txt -e '.[dev,train,hls,rtl]'
	touch $@

venv: $(STAMP)

## demo: train the demo M3ViT and its dense baseline on the synthetic scenes, evaluate, plot;
## then quantize it to w16a32 and int8 (PTQ + QAT, range analysis, golden bit-exact check),
## export the HLS projects and C-simulate them against the golden model; the deployment driver on
## the simulated accelerator and the deployment notebook executed on it (runs/notebook/); modeled performance.
## The two trainings run side by side, one core each (one thread each is also what makes them
## bit-reproducible).
demo: $(STAMP)
	mkdir -p $(RUNS)
	$(PY) -m mtl_moe train --preset demo --dense --name demo-dense --out $(DENSE) --force --no-progress \
		> $(RUNS)/demo-dense-train.log 2>&1 & dense=$$!; \
	$(PY) -m mtl_moe train --preset demo --out $(DEMO) --force || { kill $$dense; exit 1; }; \
	wait $$dense || { cat $(RUNS)/demo-dense-train.log; exit 1; }
	$(PY) -m mtl_moe eval --checkpoint $(DENSE) --out $(DENSE)
	$(PY) -m mtl_moe eval --checkpoint $(DEMO) --baseline $(DENSE) --out $(DEMO) --routing-stats
	$(PY) -m mtl_moe approx --hw w16a32 --out $(RUNS)/approx-w16a32 > /dev/null
	$(PY) -m mtl_moe approx --hw int8 --out $(RUNS)/approx-int8 > /dev/null
	$(PY) -m mtl_moe quantize --checkpoint $(DEMO) --hw int8 --out $(DEMO)-int8 --force $(QAT_ARGS) --no-progress \
		> $(RUNS)/demo-int8-quantize.log 2>&1 & int8=$$!; \
	$(PY) -m mtl_moe quantize --checkpoint $(DEMO) --hw w16a32 --out $(DEMO)-w16a32 --force $(QAT_ARGS) \
		|| { kill $$int8; exit 1; }; \
	wait $$int8 || { cat $(RUNS)/demo-int8-quantize.log; exit 1; }
	for hw in w16a32 int8; do \
		$(PY) -m mtl_moe export --checkpoint $(DEMO)-$$hw --out $(RUNS)/export-$$hw --force > /dev/null && \
		$(PY) -m mtl_moe csim $(RUNS)/export-$$hw --images 4 --report $(DEMO)-$$hw/report.md || exit 1; \
	done
	$(PY) -m mtl_moe run $(RUNS)/export-w16a32 --backend sim --images 2
	$(PY) -m mtl_moe.deploy.notebook --export $(RUNS)/export-w16a32 --out $(RUNS)/notebook > /dev/null
	$(PY) -m mtl_moe perf $(RUNS)/export-w16a32 --board zcu104 --out $(RUNS)/perf-demo-zcu104
	$(PY) -m mtl_moe perf m3vit-tiny --board zcu104 --out $(RUNS)/perf-m3vit-tiny-zcu104
	@echo "demo report: $(DEMO)/report.md"
	@echo "quantized:   $(DEMO)-w16a32/report.md $(DEMO)-int8/report.md (with the C-sim result)"
	@echo "HLS exports: $(RUNS)/export-w16a32 $(RUNS)/export-int8"
	@echo "modeled performance: $(RUNS)/perf-demo-zcu104/perf.md $(RUNS)/perf-m3vit-tiny-zcu104/perf.md"
	@echo "deployment notebook, executed on the simulated accelerator: $(RUNS)/notebook/zcu104_multitask.ipynb"

## test: lint + the CI test suite (slow tests have fast variants that run here).
test: $(STAMP)
	$(PY) -m ruff check mtl_moe tests bench sim hw_tests
	$(PY) -m pytest -m "not slow and not vivado and not board" -q -n 2 --dist loadfile --durations=15

## test-all: everything that can run on this machine, slow tests included.
test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check mtl_moe tests bench sim hw_tests

clean:
	rm -rf $(VENV) $(RUNS) .pytest_cache .ruff_cache
