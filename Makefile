# The two set-up commands: `make demo` (offline end-to-end run on synthetic phantoms) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DATA := runs/phantoms-demo

.PHONY: install test lint demo clean-demo results check-aarch64 check-install

# Ranges in pyproject.toml, the exact verified versions in constraints.txt.
$(STAMP): pyproject.toml constraints.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[train,test]"
	touch $(STAMP)

install: $(STAMP)

# Seconds: ruff's lint (pyproject.toml [tool.ruff]) and format check, then the test suite.
lint: install
	$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/ruff format --check --quiet .

# The suite in TEST_WORKERS processes (pytest-xdist), each test file whole in one of them so that its fixtures are
# built once: 988 s against 1,809 s in one process on a 2-core AVX2 host (907 tests, 2026-12-07).
TEST_WORKERS ?= 2
test: lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# `pip install .[train]` and `.[edge]` in fresh venvs outside the repository, then the whole user path
# (tests/packaging/test_install.py; minutes, downloads TensorFlow once; not part of `make test`).
check-install: install
	$(PY) -m pytest -q -m slow tests/packaging

# The demo re-trains from scratch each time (the backbone activations stay cached in runs/.cache); its
# phantoms are re-made when the demo config or the generator changes.
$(DEMO_DATA)/phantoms.json: configs/demo.toml data/phantoms.py
	rm -rf $(DEMO_DATA)
	$(PY) cli.py make-phantoms --config configs/demo.toml --out $(DEMO_DATA)

demo: install $(DEMO_DATA)/phantoms.json
	$(PY) cli.py audit-data $(DEMO_DATA) --config configs/demo.toml --sheet --force --out runs/audit-demo
	rm -rf runs/cascade-demo runs/flat-demo runs/flat-demo.log
	@echo "the flat model trains on the second core beside the cascade (log: runs/flat-demo.log)"
	$(PY) cli.py train-flat --config configs/demo.toml > runs/flat-demo.log 2>&1 & flat=$$!; \
	  trap 'kill $$flat 2>/dev/null' INT TERM EXIT; \
	  $(PY) cli.py train-cascade --config configs/demo.toml; cascade=$$?; \
	  wait $$flat; flat_rc=$$?; \
	  if [ $$flat_rc -eq 0 ]; then sed -n '/Training summary/,$$p' runs/flat-demo.log; else cat runs/flat-demo.log; fi; \
	  [ $$cascade -eq 0 ] && [ $$flat_rc -eq 0 ]
	$(PY) cli.py eval --compare-flat --config configs/demo.toml
	@r=runs/cascade-demo/eval/test-keras; f=$$r/report.html; test -f $$f || f=$$r/report.md; \
	  echo; echo "demo finished: the report is $$f (and $$r/predictions.csv)"; \
	  echo "next, INT8 for the edge (a few minutes): $(PY) cli.py export --run runs/cascade-demo && \
	  $(PY) cli.py export --run runs/flat-demo && $(PY) cli.py edge-bench --run runs/cascade-demo --flat runs/flat-demo"

clean-demo:
	rm -rf $(DEMO_DATA) runs/audit-demo runs/cascade-demo runs/flat-demo runs/flat-demo.log

# The real-data evidence chain (a benchmark, not a test): resumable, regenerates docs/RESULTS.md.
DATA ?= ../shared/data/sartaj-brain-mri
results: install
	$(PY) cli.py results --plan configs/results.toml --data $(DATA)

# The edge bundle under aarch64 emulation against x86 (root, apt and qemu; minutes; not part of `make test` or CI).
check-aarch64: install
	PY=$(PY) bash scripts/check-aarch64.sh
