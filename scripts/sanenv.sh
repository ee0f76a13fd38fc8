# Shared by scripts/asan.sh, tsan.sh, valgrind.sh, fuzz.sh, failalloc.sh, ci-extra.sh
# (sourced, POSIX sh). Checks for the tools, installing the Debian packages when root,
# and builds the sanitizer host interpreter (tests/host/luahost.c).
cd "$(dirname "$0")/.." || exit 1
MTMSG_LUAV=5.4
LUA_INCDIR=${LUA_INCDIR:-/usr/include/lua5.4}
CLANG=${CLANG:-clang}

# need_pkgs "pkg ..." : scripts/deps.sh plus the given packages (apt-get as root, else
# it prints the command and fails).
need_pkgs() {
    MTMSG_EXTRA_PKGS="$1" sh scripts/deps.sh || {
        echo "$SAN_NAME: FAIL (missing packages, see above)"
        exit 1
    }
}

# build_host <dir> <sanitizer flags>: the Lua host linked with the sanitizer runtime.
build_host() {
    $CLANG -g -O1 -fno-omit-frame-pointer $2 -I"$LUA_INCDIR" tests/host/luahost.c \
        -o "$1/luahost" -llua5.4 || { echo "$SAN_NAME: FAIL (cannot build the host)"; exit 1; }
}
