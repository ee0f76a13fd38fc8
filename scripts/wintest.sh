#!/bin/sh
# The Windows x64 build and its Lua-level tests, on Linux: cross-compiles Lua 5.4
# (scripts/winlua.sh) and mtmsg.dll with the test modules (make windows) with mingw-w64,
# checks that each DLL exports only its luaopen_ function, and runs the specs with
# tests/winrun.lua under wine (headless, a private prefix in build/win64/wineprefix).
# As root it installs what is missing (gcc-mingw-w64-x86-64, wine64, dpkg-dev; the
# deb-src entry comes from winlua.sh). Last line: "N passed, M failed" (all builds).
# WINE: the wine loader (default /usr/lib/wine/wine64, Debian's place, else wine64 or
# wine on PATH). WIN_SPECS: the specs to run (default: all but the excluded ones below).
# WINTEST_TIMEOUT: seconds for each wine run (default 600).
# WIN_VARIANTS: the builds to test, by name (default "gcc interlocked"):
#   gcc          GCC's __atomic builtins (the default with mingw-w64), build/win64/
#   interlocked  -DMTMSG_USE_INTERLOCKED, the atomics MSVC builds use, build/win64-interlocked/
cd "$(dirname "$0")/.." || exit 1
MAKE=${MAKE:-make}

fail() {
    echo "wintest: $*"
    echo "0 passed, 1 failed"
    exit 1
}

# ---- tools ----
missing=""
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || missing="$missing gcc-mingw-w64-x86-64"
if [ -z "$WINE" ]; then
    if [ -x /usr/lib/wine/wine64 ]; then WINE=/usr/lib/wine/wine64
    elif command -v wine64 >/dev/null 2>&1; then WINE=wine64
    elif command -v wine >/dev/null 2>&1; then WINE=wine
    else missing="$missing wine64"; fi
fi
command -v dpkg-source >/dev/null 2>&1 || missing="$missing dpkg-dev"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "wintest: installing$missing"
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null ||
            fail "apt-get install$missing failed"
        [ -n "$WINE" ] || WINE=/usr/lib/wine/wine64
    else
        fail "missing packages:$missing (run as root, or: apt-get install$missing)"
    fi
fi

# ---- build the Lua interpreter and DLL ----
sh scripts/winlua.sh || fail "building Lua for Windows failed"

# Excluded: rockspec_spec.lua (runs luarocks and a POSIX shell through io.popen).
if [ -z "$WIN_SPECS" ]; then
    WIN_SPECS=$(ls tests/*_spec.lua | grep -v -e '/rockspec_spec\.lua$' | tr '\n' ' ')
fi
export WINEPREFIX="$PWD/build/win64/wineprefix"
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="   # no Mono/Gecko install prompts
unset DISPLAY WAYLAND_DISPLAY
mkdir -p "$WINEPREFIX"

total_passed=0; total_failed=0
for variant in ${WIN_VARIANTS:-gcc interlocked}; do
    case $variant in
    gcc) suffix=""; cflags="" ;;
    interlocked) suffix="-interlocked"; cflags="-DMTMSG_USE_INTERLOCKED" ;;
    *) fail "unknown variant $variant" ;;
    esac
    dir=build/win64$suffix
    echo "=== Windows x64, $variant atomics ($dir) ==="
    if ! $MAKE --no-print-directory -s windows WIN_VARIANT="$suffix" WIN_EXTRA_CFLAGS="$cflags"; then
        echo "wintest: make windows failed ($variant)"
        total_failed=$((total_failed + 1)); continue
    fi

    # exports: only luaopen_<name> in each DLL
    bad=0
    for dll in "$dir"/*.dll; do
        name=$(basename "$dll" .dll)
        exports=$(x86_64-w64-mingw32-objdump -p "$dll" |
                  sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' |
                  sed -n 's/^[[:space:]]*\[ *[0-9]*\] //p' | tr '\n' ' ')
        if [ "$exports" != "luaopen_$name " ]; then
            echo "wintest: $dll exports '$exports', expected only luaopen_$name"
            bad=1
        fi
    done
    if [ "$bad" = 1 ]; then total_failed=$((total_failed + 1)); continue; fi
    echo "wintest: DLL exports checked (luaopen_<name> only)"

    # the specs under wine
    echo "wintest: $($WINE --version 2>/dev/null) running build/win64/lua/lua.exe tests/winrun.lua"
    "$WINE" build/win64/lua/lua.exe -e "package.cpath = '$dir/?.dll'
        print('wintest: ' .. require('mtmsg')._INFO)" 2>&1 | tr -d '\r' | grep '^wintest: '
    log=$dir/wintest.log
    # shellcheck disable=SC2086
    timeout "${WINTEST_TIMEOUT:-600}" "$WINE" build/win64/lua/lua.exe tests/winrun.lua \
        --cpath="$dir/?.dll" $WIN_SPECS >"$log" 2>&1
    rc=$?
    # Windows text output ends lines with CR LF; wine prints a note about a missing
    # 32-bit rundll32 when it creates the prefix.
    tr -d '\r' <"$log" | grep -v -e 'syswow64\\rundll32' -e 'has been updated'
    last=$(tr -d '\r' <"$log" | tail -1)
    if ! echo "$last" | grep -qE '^[0-9]+ passed, [0-9]+ failed$'; then
        echo "wintest: the run ended without a summary (exit status $rc; 124: timed out)"
        total_failed=$((total_failed + 1)); continue
    fi
    p=${last%% passed*}
    f=${last#*passed, }; f=${f% failed}
    total_passed=$((total_passed + p)); total_failed=$((total_failed + f))
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        echo "wintest: lua.exe exited with status $rc"
        total_failed=$((total_failed + 1))
    fi
done
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" = 0 ]
