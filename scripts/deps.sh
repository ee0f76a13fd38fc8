#!/bin/sh
# Installs the Debian packages that building and testing mtmsg need, when missing.
# As root it runs apt-get; otherwise it prints the exact command and fails.
PKGS="gcc libc6-dev make lua5.1 lua5.2 lua5.3 lua5.4 luajit liblua5.1-0-dev liblua5.2-dev liblua5.3-dev \
liblua5.4-dev libluajit-5.1-dev lua-busted luarocks lua-luv lua-cqueues lua-socket lua-copas lua-posix \
lua-cjson lua-messagepack"
[ -n "$MTMSG_EXTRA_PKGS" ] && PKGS="$PKGS $MTMSG_EXTRA_PKGS"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "deps: missing packages:$missing, and no apt-get here; install them by hand" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing" >&2
    echo "deps: run as root:  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq$missing; } >/tmp/mtmsg-deps.log 2>&1; then
    echo "deps: apt-get failed, see /tmp/mtmsg-deps.log" >&2
    tail -20 /tmp/mtmsg-deps.log >&2
    exit 1
fi
