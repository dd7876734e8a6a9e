#!/usr/bin/env bash
# The Python front's tests: builds the package into a virtual environment under target/
# (maturin through pip), checks the code (ruff), runs nvplan's own Python tests and
# PyNVMe 2.3.2's suite (the CI subset; `python/test.sh --full` runs all of it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${NVPLAN_VENV:-$root/target/pyenv}
if [ ! -x "$venv/bin/python3" ]; then
    command -v python3 >/dev/null || { echo "python/test.sh: needs Python 3.10 or newer (apt-get install python3 python3-venv)" >&2; exit 2; }
    python3 -m venv "$venv" || { rm -rf "$venv"; echo "python/test.sh: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 2; }
fi
py=$venv/bin/python3
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet 'maturin>=1.9,<2' 'pytest>=7' pytest-timeout ruff
"$venv/bin/ruff" check "$root/python" "$root/benches"
CARGO_TARGET_DIR=$root/target "$py" -m pip install --quiet "$root/python"
cd "$root"
PATH=$venv/bin:$PATH "$py" -m pytest python/tests -q -p no:cacheprovider
if [ "${1:-}" = --full ]; then
    PATH=$venv/bin:$PATH python/tests/pynvme/run.sh --full
else
    PATH=$venv/bin:$PATH python/tests/pynvme/run.sh
fi
