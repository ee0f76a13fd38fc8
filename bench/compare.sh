#!/bin/sh
# make bench-compare BEFORE=<git rev> (or sh bench/compare.sh <rev>): builds mtmsg.so of
# that revision (git archive + make LUA=5.4 lib, in /tmp) and runs make bench on this
# working tree with BENCH_ALT_CPATH pointing at it, so that every mtmsg measurement also
# runs with the old module, interleaved, as a "-before" row. The other BENCH_* knobs
# pass through. The build is kept in /tmp/mtmsg-before-<commit> and reused.
cd "$(dirname "$0")/.." || exit 1
rev=${1:-$BEFORE}
if [ -z "$rev" ]; then
    echo "usage: make bench-compare BEFORE=<git rev>  (or sh bench/compare.sh <rev>)" >&2
    exit 2
fi
sha=$(git rev-parse --verify --quiet "$rev^{commit}") || {
    echo "bench-compare: $rev is not a commit" >&2
    exit 2
}
dir=/tmp/mtmsg-before-$(echo "$sha" | cut -c1-12)
if [ ! -f "$dir/mtmsg.so" ]; then
    tmp=$(mktemp -d /tmp/mtmsg-before-build.XXXXXX) || exit 1
    echo "bench-compare: building $rev ($sha) in $tmp"
    if ! { git archive "$sha" | tar -x -C "$tmp" &&
           ${MAKE:-make} -C "$tmp" --no-print-directory -s LUA=5.4 lib; } >"$tmp.log" 2>&1; then
        cat "$tmp.log" >&2
        echo "bench-compare: could not build $rev (tree left in $tmp)" >&2
        exit 1
    fi
    mkdir -p "$dir" && cp "$tmp/build/5.4/mtmsg.so" "$dir/mtmsg.so.new" &&
        mv "$dir/mtmsg.so.new" "$dir/mtmsg.so" || exit 1
    rm -rf "$tmp" "$tmp.log"
fi
echo "bench-compare: before = $rev ($dir/mtmsg.so), after = this working tree"
BENCH_ALT_CPATH="$dir/?.so" exec ${MAKE:-make} --no-print-directory bench
