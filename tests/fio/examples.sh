#!/usr/bin/env bash
# Tries every job file of fio's own examples/ with `nvplan import-fio`: each one either
# imports to a plan that `nvplan validate` accepts, or fails with exit code 2 naming the
# options it cannot express. The NVMe-relevant ones must import and run on the simulator,
# shortened with --time-scale.
#
#   tests/fio/examples.sh [DIR]
#
# DIR is fio's examples/ directory. Without it the script downloads fio's release tarball
# (FIO_VERSION, default 3.42) from GitHub, and skips with a message when it cannot.
# Exit code 0 when every file behaves, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

FIO_VERSION=${FIO_VERSION:-3.42}
# Durations of the example jobs (runtime=900 and the like) times this.
TIME_SCALE=${TIME_SCALE:-0.002}
MUST_RUN=(jesd219.fio fio-rand-read.fio fio-rand-write.fio fio-rand-RW.fio fio-seq-read.fio fio-seq-write.fio
    fio-seq-RW.fio ssd-test.fio zipf.fio latency-profile.fio uring-cmd-ng.fio)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

dir=${1:-}
if [ -z "$dir" ]; then
    url="https://github.com/axboe/fio/archive/refs/tags/fio-$FIO_VERSION.tar.gz"
    if ! curl -fsSL --max-time 120 "$url" -o "$work/fio.tar.gz" 2>"$work/curl.err"; then
        echo "fio examples: skipped: cannot download $url ($(head -c 200 "$work/curl.err" | tr '\n' ' '))"
        echo "fio examples: run with fio's examples/ directory instead: tests/fio/examples.sh DIR"
        exit 0
    fi
    tar -xzf "$work/fio.tar.gz" -C "$work" "fio-fio-$FIO_VERSION/examples"
    dir="$work/fio-fio-$FIO_VERSION/examples"
fi
[ -d "$dir" ] || { echo "fio examples: $dir is not a directory" >&2; exit 1; }

nvplan=target/release/nvplan
cargo build --release --quiet
mkdir -p "$work/plans" "$work/runs"

imported=0 refused=0 failed=0
failures=()
for f in "$dir"/*.fio; do
    name=$(basename "$f")
    plan="$work/plans/${name%.fio}.yaml"
    set +e
    "$nvplan" import-fio "$f" --out "$plan" >/dev/null 2>"$work/err"
    rc=$?
    set -e
    case $rc in
        0)
            if "$nvplan" validate "$plan" >/dev/null 2>"$work/verr"; then
                imported=$((imported + 1))
                echo "imported  $name"
            else
                failed=$((failed + 1))
                failures+=("$name: imported, but the plan does not validate: $(head -3 "$work/verr" | tr '\n' ' ')")
            fi
            ;;
        2)
            named=$(grep -o 'not imported; fix or remove: .*' "$work/err" || true)
            if [ -n "$named" ]; then
                refused=$((refused + 1))
                echo "refused   $name: ${named#not imported; fix or remove: }"
            else
                failed=$((failed + 1))
                failures+=("$name: exit 2 without naming the options: $(tail -2 "$work/err" | tr '\n' ' ')")
            fi
            ;;
        *)
            failed=$((failed + 1))
            failures+=("$name: exit code $rc: $(tail -3 "$work/err" | tr '\n' ' ')")
            ;;
    esac
done

ran=0
for name in "${MUST_RUN[@]}"; do
    plan="$work/plans/${name%.fio}.yaml"
    if [ ! -f "$dir/$name" ]; then
        failed=$((failed + 1))
        failures+=("$name: not among the examples")
        continue
    fi
    if [ ! -f "$plan" ] || ! "$nvplan" validate "$plan" >/dev/null 2>&1; then
        failed=$((failed + 1))
        failures+=("$name: must import, and did not")
        continue
    fi
    start=$(date +%s)
    if "$nvplan" run "$plan" --time-scale "$TIME_SCALE" --quiet --out "$work/runs/${name%.fio}" >"$work/run.out" 2>&1; then
        ran=$((ran + 1))
        echo "ran       $name in $(($(date +%s) - start)) s: $(tail -1 "$work/run.out")"
    else
        failed=$((failed + 1))
        failures+=("$name: the imported plan failed on the simulator: $(tail -3 "$work/run.out" | tr '\n' ' ')")
    fi
done

echo "fio examples ($dir): $imported imported, $refused refused with exit 2, $failed failed otherwise; $ran of ${#MUST_RUN[@]} NVMe-relevant ones ran on the simulator"
for x in "${failures[@]}"; do
    echo "FAILED $x" >&2
done
[ "$failed" -eq 0 ]
