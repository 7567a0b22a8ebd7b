# Two entry points (see README): `make deploy-local` runs the main job, `make test` runs the whole suite.
# Both create .venv from scratch when it is missing and are safe to re-run.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyTorch's CPU build is not on PyPI: pip takes it from a local wheel when one is configured (find-links),
# else from PyTorch's CPU wheel index.
TORCH ?= torch==2.13.0+cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
EXTRAS_LOCAL := local
EXTRAS_TEST := local,infra,cluster,anyscale,dev

.PHONY: deploy-local test venv-local venv-test system-deps rehearsal-assets tiny-model test-envs clean-venv

# The offline, verified encodings mirror when one sits beside the project (as on machines without internet);
# otherwise the local target fetches and verifies them itself.
ENCODINGS_MIRROR := $(abspath $(wildcard ../shared/tiktoken_encodings))

# The trained tiny gpt-oss is kept in the project (.ops/models) by both entry points, so it is trained once.
export GPT_OSS_MODEL_CACHE ?= $(CURDIR)/.ops/models

deploy-local: venv-local
	$(if $(TIKTOKEN_ENCODINGS_BASE),,$(if $(ENCODINGS_MIRROR),TIKTOKEN_ENCODINGS_BASE=$(ENCODINGS_MIRROR))) $(BIN)/ops deploy --target local

test: system-deps venv-test rehearsal-assets tiny-model test-envs
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The trained tiny gpt-oss every serving test loads (~15 minutes on 2 cores the first time; a no-op when the
# cache, .ops/models, holds its recipe's checkpoint). Trained here, before the suite, so no test waits on it.
tiny-model: venv-test
	$(BIN)/python -m ops.tiny_model $(or $(ENCODINGS_MIRROR),$(error tiny-model: the verified encodings (../shared/tiktoken_encodings) must sit beside the project))

# The throwaway Python environments tests inspect (.ops/test-envs, ~20 s the first time, a no-op when their recipes
# are unchanged): transformers 4.54.1 (predates gpt-oss) and the serving stack with PyPI's torchvision (built for
# another torch). Installed here so no test downloads anything (tests/support.py holds the recipes).
test-envs: venv-test
	$(BIN)/python -m tests.support

# What the production-path rehearsal boots (tests/rehearsal): the AMI stand-in (a Debian root filesystem with
# systemd, Docker, sshd, cloud-init, the AWS CLI) and the CPU serving image in a local registry's storage. Built
# once into .ops/rehearsal, keyed by their recipes; a no-op when cached.
rehearsal-assets: system-deps venv-test
	$(BIN)/python tests/rehearsal/ami.py
	$(BIN)/python tests/rehearsal/image.py build

venv-local: $(VENV)/.installed-$(EXTRAS_LOCAL)
venv-test: $(VENV)/.installed-$(EXTRAS_TEST)

$(VENV)/.installed-%: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install "$(TORCH)" || $(BIN)/pip install "$(TORCH)" --index-url $(TORCH_INDEX)
	$(BIN)/pip install -e ".[$*]"
	# vLLM's CPU build pulls torchvision/torchaudio/torchcodec builds that do not match the CPU torch and
	# break `transformers` imports; nothing on the text path needs them.
	$(BIN)/pip uninstall -y torchvision torchaudio torchcodec
	rm -f $(VENV)/.installed-*
	touch $@

system-deps:
	bash scripts/system-deps.sh

clean-venv:
	rm -rf $(VENV)
