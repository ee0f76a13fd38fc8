#!/bin/sh
# Entry point for a fresh Debian machine: installs what is missing (make and the C
# compiler included, through scripts/deps.sh), then runs the test suite on Lua 5.1,
# 5.2, 5.3, 5.4 and LuaJIT. Ends with "N passed, M failed". `make test` does the same.
cd "$(dirname "$0")" || exit 1
sh scripts/deps.sh || exit 1
exec make --no-print-directory test
