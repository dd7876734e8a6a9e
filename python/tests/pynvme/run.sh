#!/usr/bin/env bash
# Runs PyNVMe 2.3.2's own test suite, unchanged, on nvplan: downloads it from the package
# registry, removes its compiled `nvme.so` (so `import nvme` finds nvplan's), runs it with
# its own conftest.py against --pciaddr (default: sim) and checks the outcome against
# known-failures.txt: a test that fails and is not listed fails this script, and so does
# a listed test that now passes (the list must stay true).
#
#   python/tests/pynvme/run.sh [--full] [--pciaddr ADDR] [pytest args...]
#
# Without --full only the tests in ci-subset.txt run (the CI budget); --full runs all of
# driver_test.py, scripts/test_examples.py and scripts/psd.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
full=0
addr=sim
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --full) full=1 ;;
        --pciaddr) addr=$2; shift ;;
        *) args+=("$1") ;;
    esac
    shift
done
work=${NVPLAN_PYNVME_DIR:-${TMPDIR:-/tmp}/nvplan-pynvme-suite}
if [ ! -f "$work/pynvme-2.3.2/driver_test.py" ]; then
    mkdir -p "$work"
    python3 -m pip download --quiet --no-deps --no-binary :all: pynvme==2.3.2 -d "$work"
    tar -xzf "$work/pynvme-2.3.2.tar.gz" -C "$work"
fi
cd "$work/pynvme-2.3.2"
rm -f nvme.so
if [ "$full" = 1 ]; then
    tests=(driver_test.py scripts/test_examples.py scripts/psd.py)
    limit=900
else
    limit=120
    mapfile -t tests < <(grep -v '^\s*#' "$here/ci-subset.txt" | sed '/^\s*$/d')
fi
junit="$work/results.xml"
set +e
python3 -m pytest "${tests[@]}" --pciaddr "$addr" -p no:cacheprovider --timeout "$limit" \
    -o log_cli=false -o python_files='*.py' -q -rfE --junitxml="$junit" "${args[@]}"
set -e
python3 "$here/check.py" "$junit" "$here/known-failures.txt"
