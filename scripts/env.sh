# Sourced by demo.sh and test.sh: make (once) and activate the project's own
# virtual environment in .venv, with the package and all extras installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $($PYTHON --version)"
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        # Debian without python3-venv: fall back to virtualenv from pip
        rm -rf .venv
        "$PYTHON" -m pip install --user --quiet virtualenv
        "$PYTHON" -m virtualenv --quiet .venv
    fi
fi
# shellcheck disable=SC1091
. .venv/bin/activate
STAMP=.venv/.cortex_fa-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    echo "== installing cortex_fa and its extras into .venv"
    python -m pip install --quiet --upgrade pip
    python -m pip install --quiet -e ".[all]"
    touch "$STAMP"
fi
