#!/bin/sh
# Runs every example with the module built for the given Lua version (default 5.4).
cd "$(dirname "$0")/.." || exit 1
v=${1:-5.4}
if [ "$v" = luajit ]; then lua=luajit; else lua=lua$v; fi
status=0
for ex in examples/*.lua; do
    echo "=== $ex (Lua $v) ==="
    # eventloop_<loop>.lua needs that loop's package: skip it where it does not load
    pkg=$(sed -n 's/^local [a-z]* = require "\([a-z.]*\)".*/\1/p' "$ex" | head -1)
    case "$ex" in *eventloop_*)
        if ! $lua -e "require '$pkg'" 2>/dev/null; then
            echo "skipped: package $pkg not installed for Lua $v"; continue
        fi;;
    esac
    if ! LUA_CPATH="build/$v/?.so;;" LUA_PATH="examples/?.lua;;" $lua "$ex"; then
        echo "FAILED: $ex"; status=1
    fi
done
[ $status = 0 ] && echo "all examples ran"
exit $status
