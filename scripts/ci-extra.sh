#!/bin/sh
# Extra CI checks (docs/RELIABILITY.md), each ending with a PASS/FAIL line:
#   1. asan  - the whole suite on Lua 5.4 under ASan+UBSan+LSan, then allocation-failure
#              injection under ASan (scripts/asan.sh)
#   2. tsan  - the threaded specs with the short stress test under TSan (scripts/tsan.sh)
#   3. fuzz  - every libFuzzer target for CI_FUZZ_SECONDS (default 5) from its corpus
#   4. apifuzz - the Lua API fuzzer (scripts/apifuzz.sh), CI_APIFUZZ_SECONDS (default 15)
#              under ASan+UBSan and under TSan, Lua 5.4
#   5. valgrind - only with MTMSG_CI_VALGRIND=1 (about 1 more minute)
# Installs clang, libclang-rt-14-dev, valgrind as needed when root (else prints the
# apt-get command). Last line: "ci-extra: PASS ..." or "ci-extra: FAIL ...".
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
if [ -n "$MTMSG_CI_VALGRIND" ]; then check valgrind sh scripts/valgrind.sh; fi
if [ "$status" = 0 ]; then
    echo "ci-extra: PASS (all checks, $(( $(date +%s) - t0 )) s)"
else
    echo "ci-extra: FAIL (failed:$failed; $(( $(date +%s) - t0 )) s)"
fi
exit $status
