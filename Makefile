# The book's commands. `make book` and `make test` do all the set-up on a fresh machine.
# Reuse an existing environment with `make test VENV=/path/to/venv`.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cnnbook-installed
VENDOR := _vendor/vendor/.stamp
BOOK_HTML := _build/html
# TeX Live from Debian for `make pdf`: XeLaTeX (it pulls in texlive-latex-extra), latexmk,
# the fonts the PDF uses (texlive-fonts-recommended: rsfs and the dingbats of pifont), and
# poppler-utils (pdffonts, pdftotext) for its test.
TEX_PACKAGES := texlive-xetex texlive-fonts-recommended latexmk fonts-freefont-otf \
	fonts-dejavu-core poppler-utils

.PHONY: help install book pdf tex lint test test-pdf lab sync assignments grade bench gpu-check clean

help:
	@echo "make book   build the HTML book into $(BOOK_HTML) (notebooks not in _build/.jupyter_cache are executed)"
	@echo "make pdf    build the PDF book into _build/latex/cnnbook.pdf (installs TeX Live if missing)"
	@echo "make lint   ruff check and ruff format --check (code, tests, tools and notebooks)"
	@echo "make test   lint, then the whole test suite (unit, property, notebooks, book build, browser)"
	@echo "make test-pdf  build the PDF and check it (pages, fonts, figures, title page)"
	@echo "make lab    open the chapters in JupyterLab"
	@echo "make assignments  write student notebooks (solutions removed) to _build/assignments"
	@echo "make grade SUBMISSIONS='a/03_conv_arithmetic.ipynb ...'  grade submissions (grades.csv, answers.md)"
	@echo "make sync   write the repository URL (_config.yml) and version (pyproject.toml) into every notebook's install cell,"
	@echo "            hide-input on plot-only cells, nbgrader cell metadata from the exercise markers, and the teacher's guide's exercise table"
	@echo "make bench  run every benchmark that runs on this machine and print its table"
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

# The same strict build as tests/conftest.py's built_book (tests/test_tooling.py keeps them
# equal): a warning (broken reference, failed cell, missing file) fails the build.
BOOK_FLAGS := --builder html -W --keep-going

book: install
	$(VENV)/bin/jupyter-book build . $(BOOK_FLAGS)
	@echo
	@echo "The book is ready: open $(abspath $(BOOK_HTML))/index.html"
	@echo "(or serve it: $(PY) -m http.server --bind 127.0.0.1 --directory $(BOOK_HTML) 8000)"

# TeX Live is a system package: installed with apt-get when xelatex is missing (as root).
tex:
	@if command -v xelatex >/dev/null && command -v latexmk >/dev/null \
	    && command -v pdffonts >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing TeX Live from Debian (about 3 min, about 500 MB)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES) >/dev/null; \
	else \
	    echo "make pdf needs TeX Live. As root, run:"; \
	    echo "  apt-get install --no-install-recommends $(TEX_PACKAGES)"; \
	    exit 1; \
	fi

pdf: install tex
	$(PY) tools/build_pdf.py

# Settings in pyproject.toml ([tool.ruff]); the version range in requirements.txt.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install lint
	$(PY) -m pytest

# The PDF tests are left out of `make test` (see README, Tests): they add TeX Live and
# two XeLaTeX passes over 400+ pages. Outputs come from the cache `make test` fills.
test-pdf: install tex
	$(PY) -m pytest tests/test_pdf.py -m pdf

lab: install
	$(VENV)/bin/jupyter lab chapters/

sync: install
	$(PY) tools/sync_install_cell.py
	$(PY) tools/fold_plot_cells.py
	$(PY) tools/nbgrader_meta.py
	$(PY) tools/course_plan.py

assignments: install
	$(PY) tools/nbgrader_meta.py
	$(PY) tools/make_assignments.py --out _build/assignments

grade: install
	$(PY) tools/grade_assignments.py $(SUBMISSIONS) --csv grades.csv --answers answers.md $(GRADE_FLAGS)

# Every benchmark in benchmarks/ (tests/test_tooling.py checks none is left out). The GPU
# check needs CUDA and its full profile; on a machine without it, it says so and is skipped.
bench: install
	$(PY) benchmarks/conv_speed.py
	$(PY) benchmarks/notebook_times.py
	$(PY) benchmarks/grading_time.py
	$(PY) benchmarks/resnet_throughput.py
	$(PY) benchmarks/time_to_accuracy.py
	PYTHONPATH=utils $(PY) benchmarks/draw_digit_speed.py
	$(PY) benchmarks/library_speed.py
	@if $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
	    PYTHONPATH=utils $(PY) benchmarks/gpu_check.py $(GPU_CHECK_ARGS); \
	else \
	    echo "benchmarks/gpu_check.py skipped: no CUDA device (make gpu-check on a GPU machine)"; \
	fi

# No venv and no installs: a device machine brings its own torch (README, "GPU check").
PYTHON3 ?= python3
gpu-check:
	PYTHONPATH=utils $(PYTHON3) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf _build _vendor node_modules .pytest_cache .hypothesis .jupyter_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
