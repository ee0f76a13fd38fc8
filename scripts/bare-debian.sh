#!/bin/sh
# Proves the README's first command on a bare Debian: a debootstrap "minbase" system
# (no make, no compiler, no Lua) with only git added, a clone of this repository in it,
# then `sh demo.sh` run there as root. Passes when the examples ran. Needs root and
# Debian's package mirror; installs debootstrap when missing. The system is kept in
# build/minbase (BARE_ROOT) between runs; BARE_FRESH=1 starts from a new one.
# Last line: "bare-debian: PASS" or "bare-debian: FAIL (...)".
cd "$(dirname "$0")/.." || exit 1
top=$(pwd)
root=${BARE_ROOT:-$top/build/minbase}
mirror=${BARE_MIRROR:-http://deb.debian.org/debian}
fail() { echo "bare-debian: FAIL ($1)"; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root for debootstrap and chroot"
. /etc/os-release 2>/dev/null
suite=${VERSION_CODENAME:-bookworm}
if ! command -v debootstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
        fail "cannot install debootstrap"
fi
cleanup() { umount "$root/proc" 2>/dev/null; }
trap cleanup EXIT
if [ -n "$BARE_FRESH" ] || [ ! -x "$root/usr/bin/git" ]; then
    cleanup; rm -rf "$root"
    echo "bare-debian: debootstrap --variant=minbase $suite (a few minutes)"
    debootstrap --variant=minbase --include=git "$suite" "$root" "$mirror" \
        >/tmp/mtmsg-debootstrap.log 2>&1 || { tail -5 /tmp/mtmsg-debootstrap.log; fail "debootstrap"; }
fi
# The bare system has no make and no cc: the point of the test.
if [ -n "$BARE_FRESH" ] || [ ! -e "$root/.mtmsg-checked" ]; then
    for t in make cc gcc lua5.4; do
        chroot "$root" sh -c "command -v $t" >/dev/null && fail "$t already in the bare system"
    done
    touch "$root/.mtmsg-checked"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc" || fail "mount proc"
rm -rf "$root/root/mtmsg"
git clone -q "$top" "$root/root/mtmsg" || fail "git clone"
# The committed tree as a newcomer gets it (uncommitted edits of the caller are not in it).
chroot "$root" sh -c 'cd /root/mtmsg && sh demo.sh' >/tmp/mtmsg-bare-demo.log 2>&1
rc=$?
tail -3 /tmp/mtmsg-bare-demo.log
[ $rc = 0 ] && grep -q '^all examples ran$' /tmp/mtmsg-bare-demo.log || fail "sh demo.sh: status $rc, see /tmp/mtmsg-bare-demo.log"
echo "bare-debian: PASS"
