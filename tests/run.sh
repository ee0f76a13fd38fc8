#!/bin/sh
# Runs the busted specs in tests/ on each Lua version given (5.1 5.2 5.3 5.4 luajit),
# building the module and the test-only modules first. Ends with "N passed, M failed";
# pending (skipped) specs count as failed. Exit status 0 only when nothing failed.
# Set SPECS to run a subset: SPECS="tests/buffer_spec.lua" sh tests/run.sh 5.4
# Sanitizer and valgrind runs (scripts/asan.sh, tsan.sh, valgrind.sh) also set, for one
# version at a time: VARIANT (with CC, OPT, EXTRA_CFLAGS, EXTRA_LDFLAGS: passed to make
# through the environment; modules come from build/<v>$VARIANT), MTMSG_BUILD (another
# module directory), MTMSG_LUA (the interpreter that runs busted, e.g. a sanitizer host)
# and MTMSG_RUNNER (a command prefix, e.g. "valgrind -q"). All default to the plain run.
cd "$(dirname "$0")/.." || exit 1
MAKE=${MAKE:-make}
SPECS=${SPECS:-tests}
passed=0; failed=0
for v in "$@"; do
    if [ "$v" = luajit ]; then lua=luajit; else lua=lua$v; fi
    echo "=== Lua $v ==="
    log=/tmp/mtmsg-build-$v$VARIANT.log
    if ! $MAKE --no-print-directory -s LUA="$v" testmods >"$log" 2>&1; then
        cat "$log"
        echo "build failed for Lua $v"
        failed=$((failed + 1)); continue
    fi
    build=${MTMSG_BUILD:-build/$v$VARIANT}
    out=$(MTMSG_TEST_LUA=$lua $MTMSG_RUNNER ${MTMSG_LUA:-$lua} /usr/bin/busted --cpath="$build/?.so" \
          --lpath="tests/?.lua" -o utfTerminal --pattern=_spec $SPECS 2>&1)
    rc=$?
    echo "$out"
    sum=$(echo "$out" | sed 's/\x1b\[[0-9;]*m//g' | grep -E '[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -1)
    if [ -z "$sum" ]; then
        echo "no busted summary for Lua $v (crash?)"
        failed=$((failed + 1)); continue
    fi
    s=$(echo "$sum" | grep -oE "[0-9]+ success" | grep -oE "[0-9]+")
    f=$(echo "$sum" | grep -oE '[0-9]+ failure' | grep -oE '[0-9]+')
    e=$(echo "$sum" | grep -oE '[0-9]+ error' | grep -oE '[0-9]+')
    p=$(echo "$sum" | grep -oE '[0-9]+ pending' | grep -oE '[0-9]+')
    passed=$((passed + s)); failed=$((failed + f + e + p))
    # A clean summary but a failing exit (a sanitizer or valgrind report at exit) fails too.
    if [ "$rc" != 0 ] && [ $((f + e)) = 0 ]; then
        echo "the interpreter exited with status $rc for Lua $v"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
