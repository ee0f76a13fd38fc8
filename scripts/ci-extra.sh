#!/bin/sh
# Extra CI checks (docs/RELIABILITY.md), each ending with a PASS/FAIL line:
#   1. asan  - the whole suite on Lua 5.4 under ASan+UBSan+LSan, then allocation-failure
#              injection under ASan (scripts/asan.sh)
#   2. tsan  - the threaded specs with the short stress test under TSan (scripts/tsan.sh)
#   3. fuzz  - every libFuzzer target for CI_FUZZ_SECONDS (default 5) from its corpus
#   4. apifuzz - the Lua API fuzzer (scripts/apifuzz.sh), CI_APIFUZZ_SECONDS (default 15)
#              under ASan+UBSan and under TSan, Lua 5.4
#   5. bare  - `sh demo.sh` in a debootstrap minbase system without make or a
#              compiler (scripts/bare-debian.sh; about 2.5 min the first time)
#   6. windows - the Windows x64 build (mingw-w64) and the specs under wine (scripts/wintest.sh;
#              installs gcc-mingw-w64-x86-64, wine64, dpkg-dev when root; about 1-2 min)
#   7. portable, c11, i386, win32cc - the port builds of scripts/ports.sh (README
#      "Platforms"): the suite with MTMSG_PORTABLE_POSIX, with the C11 threads backend
#      (and its TSan run), as an i386 module; mingw-w64 compile of the Win32 backend
#      (about 5 minutes together; MTMSG_CI_NO_PORTS=1 skips them)
#   8. valgrind - only with MTMSG_CI_VALGRIND=1
# Installs clang, libclang-rt-14-dev, valgrind, the i386 Lua packages as needed when
# root (else prints the apt-get command). Last line: "ci-extra: PASS ..." or "ci-extra: FAIL ...".
cd "$(dirname "$0")/.." || exit 1
status=0
failed=""
t0=$(date +%s)
check() {
    name=$1
    shift
    echo "=== ci-extra: $name ==="
    s=$(date +%s)
    if "$@"; then
        echo "ci-extra: $name: PASS ($(( $(date +%s) - s )) s)"
    else
        echo "ci-extra: $name: FAIL ($(( $(date +%s) - s )) s)"
        status=1
        failed="$failed $name"
    fi
}
check asan sh scripts/asan.sh
check tsan sh scripts/tsan.sh
check fuzz sh scripts/fuzz.sh "${CI_FUZZ_SECONDS:-5}"
check apifuzz env APIFUZZ_SECONDS="${CI_APIFUZZ_SECONDS:-15}" sh scripts/apifuzz.sh asan tsan
check bare sh scripts/bare-debian.sh
check windows sh scripts/wintest.sh
if [ -n "$MTMSG_CI_VALGRIND" ]; then check valgrind sh scripts/valgrind.sh; fi
if [ -z "$MTMSG_CI_NO_PORTS" ]; then
    check portable sh scripts/ports.sh portable
    check c11 sh scripts/ports.sh c11
    check i386 sh scripts/ports.sh i386
    check win32cc sh scripts/ports.sh win32cc
fi
if [ "$status" = 0 ]; then
    echo "ci-extra: PASS (all checks, $(( $(date +%s) - t0 )) s)"
else
    echo "ci-extra: FAIL (failed:$failed; $(( $(date +%s) - t0 )) s)"
fi
exit $status
