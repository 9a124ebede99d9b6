PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Installing is keyed on pyproject.toml: editing it re-installs.
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[data,export,search,test]'
	# Without its dependencies: it pins an older orbax-checkpoint that it never imports.
	$(PY) -m pip install --quiet --no-deps 'jax2onnx==0.17.1'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m vireid_jax.main --config configs/synthetic.py --workdir runs/demo

# Two workers (the CI machine's two cores), one test file each at a time: a file's module
# fixtures (generated data, compiled programs) stay in its worker.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile tests

clean:
	rm -rf runs
