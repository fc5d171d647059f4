#!/usr/bin/env bash
# The main job from a fresh clone: environment, verified MNIST, a first run.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cortex-fa data fetch
cortex-fa run --rule fa --hidden 500 --epochs 1 --out run.nc
