#!/bin/sh
# Allocation-failure injection (make failalloc; also the second half of make asan).
# Builds mtmsg with -DMTMSG_FAILALLOC (+ ASan/UBSan/LSan unless "plain" is given) and runs
# tests/failalloc/scenario.lua in a fresh process for N = 1, 2, ... with mtmsg's
# allocation N failing, until a run completes without an injected failure; then once in
# "lua" mode, where each step is retried with Lua's own allocation k failing, k = 1, 2, ...
# Every run must pass its checks (see the scenario) and exit cleanly under the sanitizers.
# Usage: sh scripts/failalloc.sh [asan|plain]. Last line: "failalloc: PASS ..." or FAIL.
SAN_NAME=failalloc
. "$(dirname "$0")/sanenv.sh"
need_pkgs "clang libclang-rt-14-dev"

kind=${1:-asan}
if [ "$kind" = plain ]; then SAN=""; else SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"; fi
export VARIANT=-failalloc-$kind CC="$CLANG" OPT="-O1 -g -fno-omit-frame-pointer" \
       EXTRA_CFLAGS="-DMTMSG_FAILALLOC $SAN" EXTRA_LDFLAGS="$SAN"
B=build/$MTMSG_LUAV$VARIANT
rm -rf "$B"
make --no-print-directory -s LUA=$MTMSG_LUAV testmods || { echo "failalloc: FAIL (build)"; exit 1; }
build_host "$B" "$SAN"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:allocator_may_return_null=1"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LUA_CPATH="$B/?.so"

log=$B/failalloc.log
: >"$log"
start=$(date +%s)
n=1
injected=0
while :; do
    out=$(timeout -k 5 120 "$B/luahost" tests/failalloc/scenario.lua module $n 2>&1)
    rc=$?
    echo "$out" >>"$log"
    if [ $rc != 0 ] || ! echo "$out" | grep -q "^FAILALLOC module $n "; then
        echo "$out" | tail -n 30
        echo "failalloc: FAIL (module allocation $n; log $log)"
        exit 1
    fi
    if echo "$out" | grep -q "^FAILALLOC module $n clean"; then break; fi
    injected=$((injected + 1))
    n=$((n + 1))
    if [ $n -gt 5000 ]; then echo "failalloc: FAIL (no clean run up to N=5000)"; exit 1; fi
done
steps=$(grep -oE '^FAILALLOC module [0-9]+ injected [0-9]+' "$log" | awk '{print $5}' | sort -un | wc -l)
clean=$(echo "$out" | awk '{print $5}')
echo "failalloc: module: $injected runs with an injected failure (at $steps different steps), clean at N=$n ($clean allocations in all)"

out=$(timeout -k 5 300 "$B/luahost" tests/failalloc/scenario.lua lua 2>&1)
rc=$?
echo "$out" >>"$log"
if [ $rc != 0 ] || ! echo "$out" | grep -q "^FAILALLOC lua"; then
    echo "$out" | tail -n 30
    echo "failalloc: FAIL (lua mode; log $log)"
    exit 1
fi
echo "failalloc: lua: $(echo "$out" | grep '^FAILALLOC lua' | sed 's/^FAILALLOC lua //')"
echo "failalloc: PASS ($kind build, $(( $(date +%s) - start )) s)"
