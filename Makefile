# The book's commands. `make book` and `make test` do all the set-up on a fresh machine.
# Reuse an existing environment with `make test VENV=/path/to/venv`.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cnnbook-installed
VENDOR := _vendor/vendor/.stamp
BOOK_HTML := _build/html

.PHONY: help install book test lab sync assignments grade bench gpu-check clean

help:
	@echo "make book   build the HTML book into $(BOOK_HTML) (notebooks not in _build/.jupyter_cache are executed)"
	@echo "make test   run the whole test suite (unit, property, notebooks, book build, browser)"
	@echo "make lab    open the chapters in JupyterLab"
	@echo "make assignments  write student notebooks (solutions removed) to _build/assignments"
	@echo "make grade SUBMISSIONS='a/03_conv_arithmetic.ipynb ...'  check submissions (grades.csv)"
	@echo "make sync   copy the repository URL from _config.yml into every notebook's install cell"
	@echo "make bench  print the benchmark tables"
	@echo "make gpu-check  the full profile on a CUDA machine, <= 10 min (README: GPU check)"
	@echo "make clean  remove builds and caches (keeps $(VENV) and data/)"

install: $(STAMP) $(VENDOR)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# The offline HTML book serves require.js, the widget manager and MathJax itself.
$(VENDOR): package.json package-lock.json tools/vendor.py $(wildcard tools/static/*)
	npm ci --no-audit --no-fund --loglevel=error
	$(PY) tools/vendor.py
	touch $@

book: install
	$(VENV)/bin/jupyter-book build . --builder html
	@echo
	@echo "The book is ready: open $(abspath $(BOOK_HTML))/index.html"
	@echo "(or serve it: $(PY) -m http.server --bind 127.0.0.1 --directory $(BOOK_HTML) 8000)"

test: install
	$(PY) -m pytest

lab: install
	$(VENV)/bin/jupyter lab chapters/

sync: install
	$(PY) tools/sync_install_cell.py

assignments: install
	$(PY) tools/make_assignments.py --out _build/assignments

grade: install
	$(PY) tools/grade_assignments.py $(SUBMISSIONS) --csv grades.csv

bench: install
	$(PY) benchmarks/conv_speed.py
	$(PY) benchmarks/notebook_times.py

# No venv and no installs: a device machine brings its own torch (README, "GPU check").
PYTHON3 ?= python3
gpu-check:
	PYTHONPATH=utils $(PYTHON3) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf _build _vendor node_modules .pytest_cache .hypothesis .jupyter_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
