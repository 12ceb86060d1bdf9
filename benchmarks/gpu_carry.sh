#!/usr/bin/env bash
# Prepares .gpu/ (ignored by git) for benchmarks/gpu.py on a GPU machine that reaches no network: the MNIST
# files from ../shared/data/mnist and the wheels of what the machine lacks (platformdirs). Then one device
# call, with .gpu carried, runs every figure (docs/gpu.md):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/wheels/*.whl &&
#   PYTHONPATH=/tmp/site:src python3 benchmarks/gpu.py --data-dir .gpu/mnist --results-dir $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
mkdir -p .gpu/mnist .gpu/wheels
cp ../shared/data/mnist/*.gz .gpu/mnist/
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d .gpu/wheels "platformdirs>=3.0"
du -sh .gpu
