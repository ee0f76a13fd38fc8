#!/bin/sh
# Builds a Windows x64 Lua 5.4 (lua54.dll, lua.exe, import library, headers) with
# the mingw-w64 cross compiler, from Debian's own lua5.4 source package, into
# build/win64/lua/. Quick when already built (it checks for lua.exe and lua54.dll).
#   build/win64/src/       apt-get source lua5.4 lands here (fetched once)
#   build/win64/lua/       lua54.dll lua.exe liblua54.dll.a include/*.h
# Fetching needs a deb-src entry for the archive in /etc/apt and dpkg-dev; when run
# as root this script adds the entry (/etc/apt/sources.list.d/mtmsg-deb-src.sources,
# a copy of the deb entries with Types: deb-src) and installs dpkg-dev. Set
# WINLUA_SRC to a Lua 5.4 source tree (with src/lua.h) to skip the fetch.
cd "$(dirname "$0")/.." || exit 1
MINGW=${MINGW:-x86_64-w64-mingw32}
CC="$MINGW-gcc"
OUT=build/win64/lua
SRCROOT=build/win64/src

if [ -f "$OUT/lua.exe" ] && [ -f "$OUT/lua54.dll" ] && [ -f "$OUT/liblua54.dll.a" ] &&
   [ -f "$OUT/include/lua.h" ]; then
    exit 0
fi
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "winlua: $CC not found (apt-get install gcc-mingw-w64-x86-64)" >&2
    exit 1
fi

# Adds deb-src entries mirroring the deb ones (deb822 .sources or one-line lists).
enable_debsrc() {
    f=/etc/apt/sources.list.d/mtmsg-deb-src.sources
    if grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        return 0
    fi
    : >"$f.tmp"
    for s in /etc/apt/sources.list.d/*.sources; do
        [ -f "$s" ] || continue
        sed -e 's/^Types:.*/Types: deb-src/' "$s" >>"$f.tmp"
        echo >>"$f.tmp"
    done
    mv "$f.tmp" "$f"
    if [ -f /etc/apt/sources.list ]; then
        grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
            >/etc/apt/sources.list.d/mtmsg-deb-src.list
    fi
    [ -s "$f" ] || rm -f "$f"
    apt-get update -qq
}

src=${WINLUA_SRC:-}
if [ -z "$src" ]; then
    src=$(ls -d "$SRCROOT"/lua5.4-*/ 2>/dev/null | head -1)
fi
if [ -z "$src" ] || [ ! -f "$src/src/lua.h" ]; then
    mkdir -p "$SRCROOT"
    if [ "$(id -u)" = 0 ]; then
        enable_debsrc || exit 1
        command -v dpkg-source >/dev/null 2>&1 || apt-get install -y -qq dpkg-dev || exit 1
    fi
    echo "winlua: apt-get source lua5.4 into $SRCROOT"
    (cd "$SRCROOT" && apt-get source -qq lua5.4) || {
        echo "winlua: apt-get source lua5.4 failed (needs a deb-src entry and dpkg-dev;" \
             "run as root once, or set WINLUA_SRC)" >&2
        exit 1
    }
    src=$(ls -d "$SRCROOT"/lua5.4-*/ | head -1)
fi
src=${src%/}
[ -f "$src/src/lua.h" ] || { echo "winlua: no src/lua.h in $src" >&2; exit 1; }
echo "winlua: building Lua for Windows x64 from $src"

# The file lists of Lua's own makefile (src/Makefile: CORE_O, LIB_O, lua.o).
core="lapi lcode lctype ldebug ldo ldump lfunc lgc llex lmem lobject lopcodes lparser
      lstate lstring ltable ltm lundump lvm lzio lauxlib lbaselib lcorolib ldblib liolib
      lmathlib loadlib loslib lstrlib ltablib lutf8lib linit"
obj=$OUT/obj
mkdir -p "$obj" "$OUT/include"
objs=""
for f in $core; do
    # LUA_BUILD_AS_DLL: the API is __declspec(dllexport) in the DLL (luaconf.h);
    # LUA_COMPAT_5_3 as Debian's own build of 5.4 uses it.
    $CC -std=gnu99 -O2 -Wall -DLUA_COMPAT_5_3 -DLUA_BUILD_AS_DLL -c "$src/src/$f.c" \
        -o "$obj/$f.o" || exit 1
    objs="$objs $obj/$f.o"
done
# shellcheck disable=SC2086
$CC -shared -o "$OUT/lua54.dll" $objs -Wl,--out-implib,"$OUT/liblua54.dll.a" -s || exit 1
$CC -std=gnu99 -O2 -Wall -DLUA_COMPAT_5_3 -DLUA_BUILD_AS_DLL -c "$src/src/lua.c" \
    -o "$obj/lua.o" || exit 1
$CC -o "$OUT/lua.exe" "$obj/lua.o" "$OUT/liblua54.dll.a" -s || exit 1
for h in lua.h luaconf.h lualib.h lauxlib.h lua.hpp; do
    [ -f "$src/src/$h" ] && cp "$src/src/$h" "$OUT/include/"
done
echo "winlua: built $OUT/lua.exe $OUT/lua54.dll"
