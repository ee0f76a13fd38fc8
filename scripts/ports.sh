#!/bin/sh
# The port builds that this Debian machine can prove (README "Platforms"), each the
# whole suite on Lua 5.4 with another sync backend or target:
#   portable  MTMSG_PORTABLE_POSIX pthread build (what macOS offers: no condattr clock,
#             realtime condvar deadlines), strict POSIX headers, implicit declarations
#             are errors, and the module's undefined symbols hold no Linux-only call
#   c11       C11 <threads.h> + <stdatomic.h> backend (-std=c11), then the threaded
#             specs under TSan with that backend (scripts/tsan.sh)
#   i386      gcc -m32 module, run by a 32-bit Lua host (tests/host/luahost.c) linked
#             with Debian's i386 liblua5.4; busted's C modules (lfs, system, term) are
#             i386 too. The i386 packages are downloaded and unpacked into
#             build/i386-root, not installed: lua5.4:i386 and lua-term:i386 are not
#             co-installable with their amd64 packages (busted needs those).
#   win32cc   compile-only: src/*.c for Windows with mingw-w64, each atomics backend
# Usage: sh scripts/ports.sh [portable] [c11] [i386] [win32cc]   (none: all four)
# As root it installs what is missing (gcc-multilib, clang for TSan, the i386 dpkg
# architecture and its package lists); otherwise it prints the commands and fails.
# Prints "ports: <name>: PASS|FAIL ..." per part, then "N passed, M failed" (the specs
# of every suite run; a failed build, check or TSan report counts as one failure).
cd "$(dirname "$0")/.." || exit 1
LUAV=5.4
total_p=0; total_f=0; status=0
ROOT=$PWD/build/i386-root

# suite <label> : tests/run.sh on $LUAV with the current environment; adds its counts.
suite() {
    log=$(mktemp)
    sh tests/run.sh $LUAV 2>&1 | tee "$log" | sed 's/\x1b\[[0-9;]*m//g' | grep -v '^[●◼✱]*$'
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
    rm -f "$log"
    if [ -z "$last" ]; then total_f=$((total_f + 1)); return 1; fi
    p=${last%% passed*}; f=${last##*, }; f=${f%% failed}
    total_p=$((total_p + p)); total_f=$((total_f + f))
    [ "$f" = 0 ]
}

verdict() {     # verdict <name> <rc> <detail>
    if [ "$2" = 0 ]; then echo "ports: $1: PASS ($3)"
    else echo "ports: $1: FAIL ($3)"; status=1; fi
}

# info <build dir> <lua> <pattern> : mtmsg._INFO of that build matches the Lua pattern
info() {
    echo "package.cpath = '$1/?.so;' .. package.cpath
local i = require('mtmsg')._INFO; print(i); assert(i:find('$3'), 'unexpected _INFO')" >"$1/info.lua"
    $2 "$1/info.lua"
}

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "ports: $1: run as root: $2" >&2
        return 1
    fi
}

run_portable() {
    s=$(date +%s)
    export VARIANT=-portable EXTRA_CFLAGS="-DMTMSG_PORTABLE_POSIX -Werror=implicit-function-declaration"
    B=build/$LUAV$VARIANT
    suite; rc=$?
    # No Linux-only call may be linked (macOS lacks these; glibc names them in the module).
    linux_only='pthread_condattr_setclock|pthread_condattr_getclock|eventfd|epoll_|inotify_|signalfd|timerfd|clock_nanosleep|pthread_mutex_timedlock|pthread_spin_|pthread_barrier|pthread_[a-z_]*_np|sem_timedwait|sched_getcpu|syscall|futex|memrchr|mempcpy|strchrnul|getrandom|secure_getenv|pipe2|dup3|accept4|gettid|prctl|timer_create'
    syms=$(nm -D --undefined-only "$B/mtmsg.so" | awk '{print $2}' | sed 's/@.*//' | grep -v '^lua' | sort -u | tr '\n' ' ')
    echo "ports: portable: undefined symbols: $syms"
    bad=$(echo "$syms" | tr ' ' '\n' | grep -E "^($linux_only)" | tr '\n' ' ')
    if [ -n "$bad" ]; then echo "ports: portable: Linux-only symbols: $bad"; rc=1; fi
    info "$B" lua$LUAV 'threads pthread %(portable' || rc=1
    unset VARIANT EXTRA_CFLAGS
    verdict portable $rc "$(( $(date +%s) - s )) s"
}

run_c11() {
    s=$(date +%s)
    export VARIANT=-c11 CSTD=c11 EXTRA_CFLAGS="-DMTMSG_USE_C11THREADS -DMTMSG_USE_STDATOMIC"
    suite; rc=$?
    info build/$LUAV$VARIANT lua$LUAV 'threads c11%-threads, atomics c11%-stdatomic' || rc=1
    unset VARIANT EXTRA_CFLAGS
    verdict c11 $rc "suite, $(( $(date +%s) - s )) s"
    s=$(date +%s)
    log=$(mktemp)
    TSAN_VARIANT=-c11 TSAN_EXTRA_CFLAGS="-DMTMSG_USE_C11THREADS -DMTMSG_USE_STDATOMIC" \
        sh scripts/tsan.sh 2>&1 | tee "$log"
    rc=$?
    # tsan.sh prints "tsan: N passed, M failed, R ThreadSanitizer reports, T s"
    line=$(grep -E '^tsan: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    p=$(echo "$line" | sed -E 's/^tsan: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^tsan: [0-9]+ passed, ([0-9]+) failed.*/\1/')
    r=$(echo "$line" | sed -E 's/.* ([0-9]+) ThreadSanitizer reports.*/\1/')
    grep -q '^tsan: PASS' "$log" || rc=1
    rm -f "$log"
    if [ -n "$line" ]; then
        total_p=$((total_p + p)); total_f=$((total_f + f + r))
    else
        total_f=$((total_f + 1))
    fi
    unset CSTD
    verdict c11tsan $rc "$(( $(date +%s) - s )) s"
}

# The i386 Lua library, its headers and busted's C modules, unpacked (not installed).
i386_root() {
    [ -f "$ROOT/.done" ] && return 0
    if ! dpkg --print-foreign-architectures | grep -qx i386 \
       || ! apt-cache show liblua5.4-0:i386 >/dev/null 2>&1; then
        need_root i386 "dpkg --add-architecture i386 && apt-get update" || return 1
        dpkg --add-architecture i386 && apt-get update -qq >/dev/null 2>&1 || return 1
    fi
    rm -rf "$ROOT" && mkdir -p "$ROOT/debs" && chmod 777 "$ROOT/debs" || return 1
    (cd "$ROOT/debs" && apt-get -qq download liblua5.4-0:i386 liblua5.4-dev:i386 \
        lua-filesystem:i386 lua-system:i386 lua-term:i386) || return 1
    for d in "$ROOT"/debs/*.deb; do dpkg-deb -x "$d" "$ROOT" || return 1; done
    touch "$ROOT/.done"
}

run_i386() {
    s=$(date +%s)
    if ! dpkg-query -W -f='${Status}' gcc-multilib 2>/dev/null | grep -q "ok installed"; then
        need_root i386 "apt-get install -y gcc-multilib" && apt-get install -y -qq gcc-multilib >/dev/null 2>&1
    fi
    rc=0
    i386_root || { echo "ports: i386: cannot get the i386 Lua packages"; rc=1; }
    B=build/$LUAV-i386
    if [ $rc = 0 ]; then
        mkdir -p "$B"
        gcc -m32 -O1 -g -I"$ROOT/usr/include/lua5.4" -I"$ROOT/usr/include/i386-linux-gnu" \
            tests/host/luahost.c -o "$B/luahost" "$ROOT/usr/lib/i386-linux-gnu/liblua5.4.so.0" \
            -Wl,-rpath,"$ROOT/usr/lib/i386-linux-gnu" || rc=1
    fi
    if [ $rc = 0 ]; then
        export VARIANT=-i386 CC="gcc -m32" LUA_INCDIR="$ROOT/usr/include/lua5.4" \
               EXTRA_CFLAGS="-I$ROOT/usr/include/i386-linux-gnu" MTMSG_LUA="$B/luahost" \
               LUA_CPATH_5_4="$ROOT/usr/lib/i386-linux-gnu/lua/5.4/?.so;;" MTMSG_NO_LOOP_PKGS=1
        suite || rc=1
        file "$B/mtmsg.so" | grep -q 'ELF 32-bit.*80386' || { echo "ports: i386: not an i386 module"; rc=1; }
        info "$B" "$B/luahost" 'threads pthread, atomics gcc%-atomic%-builtins' || rc=1
        unset VARIANT CC LUA_INCDIR EXTRA_CFLAGS MTMSG_LUA LUA_CPATH_5_4 MTMSG_NO_LOOP_PKGS
    else
        total_f=$((total_f + 1))
    fi
    verdict i386 $rc "$(( $(date +%s) - s )) s"
}

# Compile-only: every src/*.c for Windows with mingw-w64, warnings as errors, with each
# atomics backend (gcc builtins: mingw's default; Interlocked: what MSVC gets; stdatomic).
# Linking needs a Windows lua54.dll: see make windows / make test-windows.
run_win32cc() {
    s=$(date +%s)
    rc=0
    MINGW=${MINGW_CC:-x86_64-w64-mingw32-gcc}
    if ! command -v "$MINGW" >/dev/null 2>&1; then
        need_root win32cc "apt-get install -y gcc-mingw-w64-x86-64" || rc=1
        [ $rc = 0 ] && { apt-get install -y -qq gcc-mingw-w64-x86-64 >/dev/null 2>&1 || rc=1; }
    fi
    if [ $rc = 0 ]; then
        W="-Wall -Wextra -Wshadow -Wundef -Wmissing-prototypes -Wstrict-prototypes -Wcast-qual \
           -Wpointer-arith -Wwrite-strings -Wno-unused-parameter -Werror"
        o=build/win32cc; mkdir -p $o
        for cfg in "c99" "c99 -DMTMSG_USE_INTERLOCKED" "c11 -DMTMSG_USE_STDATOMIC"; do
            std=${cfg%% *}; def=${cfg#$std}; crc=0
            for f in src/*.c; do
                $MINGW -std=$std $def -O2 $W -DMTMSG_VERSION='"win32cc"' -I/usr/include/lua5.4 \
                    -Isrc -Iinclude -c "$f" -o $o/$(basename "$f" .c).o || crc=1
            done
            if [ $crc = 0 ]; then total_p=$((total_p + 1)); echo "ports: win32cc: -std=$std$def: compiles"
            else total_f=$((total_f + 1)); rc=1; echo "ports: win32cc: -std=$std$def: FAILS"; fi
        done
    else
        total_f=$((total_f + 1))
    fi
    verdict win32cc $rc "$(( $(date +%s) - s )) s"
}

parts=${*:-portable c11 i386 win32cc}
for part in $parts; do
    case $part in
        portable) run_portable ;;
        c11) run_c11 ;;
        i386) run_i386 ;;
        win32cc) run_win32cc ;;
        *) echo "ports: unknown part $part (portable, c11, i386, win32cc)"; status=1 ;;
    esac
done
echo "ports: $([ $status = 0 ] && echo PASS || echo FAIL) ($parts)"
echo "$total_p passed, $total_f failed"
exit $status
