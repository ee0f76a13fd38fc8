#!/bin/sh
# Runs the busted specs in tests/ on each Lua version given (5.1 5.2 5.3 5.4 luajit),
# building the module and the test-only modules first. Ends with "N passed, M failed";
# pending (skipped) specs count as failed. Exit status 0 only when nothing failed.
# Set SPECS to run a subset: SPECS="tests/buffer_spec.lua" sh tests/run.sh 5.4
cd "$(dirname "$0")/.." || exit 1
MAKE=${MAKE:-make}
SPECS=${SPECS:-tests}
passed=0; failed=0
for v in "$@"; do
    if [ "$v" = luajit ]; then lua=luajit; else lua=lua$v; fi
    echo "=== Lua $v ==="
    if ! $MAKE --no-print-directory -s LUA="$v" testmods >/tmp/mtmsg-build-$v.log 2>&1; then
        cat /tmp/mtmsg-build-$v.log
        echo "build failed for Lua $v"
        failed=$((failed + 1)); continue
    fi
    out=$(MTMSG_TEST_LUA=$lua $lua /usr/bin/busted --cpath="build/$v/?.so" \
          --lpath="tests/?.lua" -o utfTerminal --pattern=_spec $SPECS 2>&1)
    echo "$out"
    sum=$(echo "$out" | sed 's/\x1b\[[0-9;]*m//g' | grep -E '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -1)
    if [ -z "$sum" ]; then
        echo "no busted summary for Lua $v (crash?)"
        failed=$((failed + 1)); continue
    fi
    s=$(echo "$sum" | grep -oE "[0-9]+ success" | grep -oE "[0-9]+")
    f=$(echo "$sum" | grep -oE '[0-9]+ failure' | grep -oE '[0-9]+')
    e=$(echo "$sum" | grep -oE '[0-9]+ error' | grep -oE '[0-9]+')
    p=$(echo "$sum" | grep -oE '[0-9]+ pending' | grep -oE '[0-9]+')
    passed=$((passed + s)); failed=$((failed + f + e + p))
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
