#!/bin/sh
# A real trace, end to end (docs/traces.md, "A worked real-trace example"): build XSBench
# (unmodified, from ../shared/third_party), trace its lookup phase with valgrind lackey, cut
# it at the first instruction of the lookup loop, convert it, and compare baseline, migrc and
# LUF on it as 16 threads with a steady-state start.
#
#   examples/xsbench-lackey.sh [LOOKUPS [WORKDIR]]      (default 100000 lookups, $TMPDIR)
#
# Environment: XSBENCH (the XSBench source folder), MIGRC_BENCH (the command, default
# migrc-bench), COMPARE_ARGS (more arguments for the compare, e.g. "--format markdown").
set -eu

LOOKUPS=${1:-100000}
WORK=${2:-${TMPDIR:-/tmp}/xsbench-lackey}
HERE=$(cd "$(dirname "$0")/.." && pwd)
MB=${MIGRC_BENCH:-migrc-bench}
if [ -z "${XSBENCH:-}" ]; then
    for d in "$HERE/../shared/third_party/XSBench" "$HERE/../../shared/third_party/XSBench"; do
        [ -d "$d/openmp-threading" ] && XSBENCH=$d && break
    done
fi
[ -d "${XSBENCH:-}/openmp-threading" ] || { echo "XSBench source not found: set XSBENCH" >&2; exit 2; }

# 1. Build a copy (the shared folder is read-only). Linked without PIE so that the addresses
#    nm prints are the addresses the program runs at (and lackey reports).
mkdir -p "$WORK"
rm -rf "$WORK/XSBench"
cp -r "$XSBENCH/openmp-threading" "$WORK/XSBench"
chmod -R u+w "$WORK/XSBench"
make -s -C "$WORK/XSBench" LDFLAGS="-lm -no-pie"
cd "$WORK/XSBench"

# 2. The grids once, natively, into XS_data.dat (-b write): under valgrind the program then
#    reads them (-b read) instead of spending billions of traced instructions building them.
#    (XSBench exits 1 when its checksum is not the one of the default lookup count.)
./XSBench -s small -m event -t 1 -l 1000 -b write > init.txt || true
[ -s XS_data.dat ] || { echo "XSBench did not write XS_data.dat (see init.txt)" >&2; exit 2; }

# 3. The first instruction of the lookup loop: the OpenMP body of run_event_based_simulation.
START=$(nm XSBench | awk '$3 == "run_event_based_simulation._omp_fn.0" { print "0x" $1 }')
[ -n "$START" ] || { echo "run_event_based_simulation._omp_fn.0 not found by nm" >&2; exit 2; }

# 4. Trace one thread, event-based, -s small; convert from the loop's first fetch on.
valgrind --tool=lackey --trace-mem=yes --log-file="$WORK/xsbench.log" \
    ./XSBench -s small -m event -t 1 -l "$LOOKUPS" -b read > run.txt || true
grep -q "^Lookups:" run.txt || { echo "XSBench under valgrind failed (see run.txt)" >&2; exit 2; }
"$MB" trace convert "$WORK/xsbench.log" --start-at "$START" -o "$WORK/xsbench-lackey.parquet"
rm -f "$WORK/xsbench.log"

# 5. 16 threads sharing the lookups (replay.max_accesses = the trace's records: thread k
#    replays the k-th sixteenth, as XSBench's OpenMP loop splits them), steady state.
RECORDS=$("$MB" trace info "$WORK/xsbench-lackey.parquet" --format json |
          python3 -c 'import json, sys; print(json.load(sys.stdin)["records"])')
# shellcheck disable=SC2086  # COMPARE_ARGS is a list of words
"$MB" compare "$WORK/xsbench-lackey.parquet" --config xsbench-lackey \
    --engines baseline,migrc,luf --set replay.max_accesses="$RECORDS" ${COMPARE_ARGS:-}
