#!/usr/bin/env bash
# The whole test suite, from a fresh clone: environment, data, browser, pytest.
set -euo pipefail
. "$(dirname "$0")/env.sh"
# The app is tested in a real browser: Debian's chromium, never a downloaded build.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "   chromium could not be installed: browser tests will be skipped (or fail under CI=true)"
fi
# The CF compliance checker (tests/test_cf.py) reads units through Debian's udunits2.
if ! ldconfig -p 2>/dev/null | grep -q libudunits2.so.0 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Debian's libudunits2 for the CF compliance tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libudunits2-0 >/dev/null) \
        || echo "   libudunits2 could not be installed: the CF compliance tests may be skipped (or fail under CI=true)"
fi
cortex-fa data fetch --quiet
# Two workers pay on two cores: much of the suite waits on subprocesses, servers and the
# browser. tests/conftest.py groups a file's tests on one worker where they share an
# expensive fixture (made once) and hands out slow tests first. Extra arguments go to
# pytest; CORTEX_FA_TEST_WORKERS=0 runs in this process (for pdb).
python -m pytest -n "${CORTEX_FA_TEST_WORKERS:-2}" --dist loadgroup "$@"
