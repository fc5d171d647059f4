#!/usr/bin/env bash
# The main job from a fresh clone: environment, verified MNIST, the quick depth
# study (bp, fa, usf, dfa at 1-7 hidden columns), its report and its figures.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cortex-fa data fetch
cortex-fa reproduce depth_study --quick --out study.nc
cortex-fa report study.nc
cortex-fa plot study.nc --out figures/
echo "explore it: cortex-fa serve study.nc   (then open http://127.0.0.1:5006)"
