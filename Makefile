# Stable entry points; see README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUBMISSION ?= examples/submission
TASKS ?= examples/tasks
MODELS ?= examples/models
RUN_DIR ?= runs/latest
SANDBOX ?= auto
EXAMPLE_TIMING ?= --batch-size 2 --warmup-batches 1 --min-batches 6 --max-batches 12 --target-ci 0.05 --budget 20
GRADE_ARGS ?=
# The bundled example fails some tasks on purpose (missing, invalid metrics, a crash): its
# grading succeeds when the run finishes. Any other submission exits 1 when a task is not ok.
ifeq ($(SUBMISSION),examples/submission)
EXIT_ARGS ?= --exit-zero
endif

.PHONY: setup setup-test models bwrap grade test test-fast image image-cpu clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# setup: what grading needs; setup-test: plus the test extras. Versions: constraints.txt.
setup: $(PY)
	$(PY) -m pip install -q torch==2.13.0 || $(PY) -m pip install -q "torch>=2.1"
	$(PY) -m pip install -q -c constraints.txt -e .

setup-test: setup
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'

models: setup
	$(PY) examples/build_models.py --out $(MODELS)

# bubblewrap for --sandbox bwrap (auto's choice without Docker): installed when root and apt-get can
bwrap:
	bash scripts/ci_bwrap.sh --best-effort

grade: models bwrap
	$(VENV)/bin/grader grade $(SUBMISSION) --tasks $(TASKS) --model-dir $(MODELS) \
	  --clip-model $(MODELS)/clip --out $(RUN_DIR) --sandbox $(SANDBOX) $(EXAMPLE_TIMING) $(EXIT_ARGS) $(GRADE_ARGS)

test: setup-test
	$(VENV)/bin/pytest -q

test-fast: setup-test
	$(VENV)/bin/pytest -q -m "not slow and not docker"

image:
	bash scripts/build_image.sh gpu

image-cpu:
	bash scripts/build_image.sh cpu

clean:
	rm -rf runs build
