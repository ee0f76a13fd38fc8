#!/bin/sh
# Runs every example with the module built for the given Lua version (default 5.4).
cd "$(dirname "$0")/.." || exit 1
v=${1:-5.4}
if [ "$v" = luajit ]; then lua=luajit; else lua=lua$v; fi
status=0
for ex in examples/*.lua; do
    echo "=== $ex (Lua $v) ==="
    if ! LUA_CPATH="build/$v/?.so" LUA_PATH="examples/?.lua" $lua "$ex"; then
        echo "FAILED: $ex"; status=1
    fi
done
[ $status = 0 ] && echo "all examples ran"
exit $status
