#!/bin/sh
# make asan: the whole busted suite on Lua 5.4 with AddressSanitizer + UndefinedBehavior-
# Sanitizer (clang; module and test modules instrumented, Debian's liblua not), leak
# checking on, every UBSan finding fatal; then the allocation-failure scenario
# (scripts/failalloc.sh) under ASan/LSan. Last line: "asan: PASS ..." or "asan: FAIL ...".
SAN_NAME=asan
. "$(dirname "$0")/sanenv.sh"
need_pkgs "clang libclang-rt-14-dev"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
export VARIANT=-asan CC="$CLANG" OPT="-O1 -g -fno-omit-frame-pointer" \
       EXTRA_CFLAGS="$SAN" EXTRA_LDFLAGS="$SAN"
B=build/$MTMSG_LUAV$VARIANT
rm -rf "$B"                     # the Makefile does not track flags: always rebuild
make --no-print-directory -s LUA=$MTMSG_LUAV testmods || { echo "asan: FAIL (build)"; exit 1; }
build_host "$B" "$SAN"

# detect_stack_use_after_return: also catches pointers to dead stack frames.
# allocator_may_return_null: tests ask for absurd sizes (newbuffer(2^60)); those must turn
# into out_of_memory errors instead of an ASan abort.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:allocator_may_return_null=1:print_summary=1"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:print_summary=1"

log=$B/asan-suite.log
start=$(date +%s)
# (timeout: a hang fails the check instead of stalling CI)
MTMSG_LUA=$B/luahost timeout -k 10 900 sh tests/run.sh $MTMSG_LUAV >"$log" 2>&1
rc=$?
sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -v '^[●◼✱]*$' | tail -n 40
summary=$(tail -n 1 "$log")
reports=$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log")
echo "asan: suite: $summary, $reports sanitizer reports, $(( $(date +%s) - start )) s"
suite_ok=1
if [ "$rc" != 0 ] || [ "$reports" != 0 ]; then
    echo "asan: suite failed (full log in $log)"
    suite_ok=0
fi

# Allocation-failure injection under ASan/LSan (its own -DMTMSG_FAILALLOC build), run
# even when the suite failed, so that one report shows both.
if ! sh scripts/failalloc.sh asan; then
    echo "asan: FAIL (failalloc$( [ $suite_ok = 0 ] && echo " and the suite"))"
    exit 1
fi
if [ $suite_ok = 0 ]; then echo "asan: FAIL (suite: $summary, $reports sanitizer reports)"; exit 1; fi
echo "asan: PASS ($summary; failalloc clean; 0 sanitizer reports)"
