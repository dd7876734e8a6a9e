#!/usr/bin/env bash
# Runs PyNVMe 2.3.2's own test suite, unchanged, on nvplan: downloads it from the package
# registry, removes its compiled `nvme.so` (so `import nvme` finds nvplan's), runs it with
# its own conftest.py against --pciaddr (default: sim) and checks the outcome against
# known-failures.txt (and the lists --known adds): a test that fails and is not listed
# fails this script, and so does a listed test that now passes (the lists must stay true).
#
#   python/tests/pynvme/run.sh [--full | --subset FILE] [--known FILE]... [--pciaddr ADDR] [pytest args...]
#   python/tests/pynvme/run.sh --fetch-only      download and unpack the suite, nothing else
#
# Without --full only the tests in ci-subset.txt run (the CI budget), or those FILE lists
# (one test id a line, `#` comments); --full runs all of driver_test.py,
# scripts/test_examples.py and scripts/psd.py. The suite is unpacked in
# $NVPLAN_PYNVME_DIR (default $TMPDIR/nvplan-pynvme-suite) and downloaded only when it is
# not there yet, so a machine without network (the QEMU guest) runs one unpacked before.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
full=0
fetch_only=0
addr=sim
subset=$here/ci-subset.txt
known=()
[ -f "$here/known-failures.txt" ] && known+=("$here/known-failures.txt")
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --full) full=1 ;;
        --fetch-only) fetch_only=1 ;;
        --subset) subset=$(readlink -f "$2"); shift ;;
        --known) known+=("$(readlink -f "$2")"); shift ;;
        --pciaddr) addr=$2; shift ;;
        *) args+=("$1") ;;
    esac
    shift
done
work=${NVPLAN_PYNVME_DIR:-${TMPDIR:-/tmp}/nvplan-pynvme-suite}
if [ ! -f "$work/pynvme-2.3.2/driver_test.py" ]; then
    mkdir -p "$work"
    [ -f "$work/pynvme-2.3.2.tar.gz" ] \
        || python3 -m pip download --quiet --no-deps --no-binary :all: pynvme==2.3.2 -d "$work"
    tar -xzf "$work/pynvme-2.3.2.tar.gz" -C "$work"
fi
rm -f "$work/pynvme-2.3.2/nvme.so"
[ "$fetch_only" = 1 ] && exit 0
cd "$work/pynvme-2.3.2"
if [ "$full" = 1 ]; then
    tests=(driver_test.py scripts/test_examples.py scripts/psd.py)
    limit=900
else
    limit=120
    # (No process substitution: a QEMU guest's devtmpfs may have no /dev/fd.)
    tests=()
    while read -r t _; do
        case $t in '' | '#'*) ;; *) tests+=("$t") ;; esac
    done < "$subset"
fi
# driver_test.py and scripts/ run as two sessions, as PyNVMe runs them (pytest.ini's
# testpaths is scripts/): its session-wide `buf` fixture keeps the offset one test sets,
# which another file's tests do not expect.
root_tests=()
script_tests=()
for t in "${tests[@]}"; do
    case $t in scripts/*) script_tests+=("$t") ;; *) root_tests+=("$t") ;; esac
done
junits=""
session=0
set +e
for group in root script; do
    if [ "$group" = root ]; then sel=("${root_tests[@]}"); else sel=("${script_tests[@]}"); fi
    [ ${#sel[@]} -eq 0 ] && continue
    session=$((session + 1))
    junit="$work/results-$session.xml"
    rm -f "$junit"
    python3 -m pytest "${sel[@]}" --pciaddr "$addr" -p no:cacheprovider --timeout "$limit" \
        -o log_cli=false -o python_files='*.py' -q -rfE --junitxml="$junit" "${args[@]}"
    junits="$junits${junits:+:}$junit"
done
set -e
python3 "$here/check.py" "$junits" "${known[@]}"
