#!/bin/sh
# make fuzz [FUZZ_SECONDS=n]: builds the libFuzzer targets of fuzz/ (clang
# -fsanitize=fuzzer,address,undefined; the src/*.c objects linked in directly, Debian's
# liblua5.4 where a target needs a Lua state) and runs each for n seconds (default 10)
# from its committed seed corpus fuzz/corpus/<target>/ plus the growing working corpus
# fuzz/corpus-work/<target>/ (not committed). Crashes land in build/fuzz/artifacts/.
# Usage: sh scripts/fuzz.sh [seconds] [target...]   (FUZZ_JOBS=2 runs two at a time)
# Last line: "fuzz: PASS ..." or "fuzz: FAIL ...".
SAN_NAME=fuzz
. "$(dirname "$0")/sanenv.sh"
need_pkgs "clang libclang-rt-14-dev"

secs=${1:-${FUZZ_SECONDS:-10}}
[ $# -gt 0 ] && shift
targets=${*:-"fuzz_codec fuzz_reader fuzz_roundtrip fuzz_ops"}
jobs=${FUZZ_JOBS:-1}

F=build/fuzz
mkdir -p "$F/obj" "$F/artifacts"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS="-std=c99 -D_POSIX_C_SOURCE=200809L -g -O1 -fno-omit-frame-pointer $SAN \
 -Isrc -Iinclude -I$LUA_INCDIR -DMTMSG_VERSION=\"fuzz\""
objs=""
for c in src/*.c; do
    o=$F/obj/$(basename "$c" .c).o
    # rebuild when the source or any header is newer than the object
    if [ ! -f "$o" ] || [ -n "$(find "$c" src/*.h include/*.h -newer "$o" 2>/dev/null | head -n 1)" ]; then
        $CLANG $CFLAGS -fsanitize=fuzzer-no-link -c "$c" -o "$o" || { echo "fuzz: FAIL (build $c)"; exit 1; }
    fi
    objs="$objs $o"
done
# the test-only carray module, linked into the targets that decode arrays
$CLANG $CFLAGS -fsanitize=fuzzer-no-link -c tests/mod/carray.c -o "$F/obj/mod_carray.o" ||
    { echo "fuzz: FAIL (build tests/mod/carray.c)"; exit 1; }
for t in $targets; do
    use=$objs
    # fuzz_reader compiles src/reader.c itself (to see the Reader struct)
    [ "$t" = fuzz_reader ] && use=$(echo "$objs" | tr ' ' '\n' | grep -v '/reader\.o$' | tr '\n' ' ')
    case $t in fuzz_codec|fuzz_reader) use="$use $F/obj/mod_carray.o" ;; esac
    $CLANG $CFLAGS -fsanitize=fuzzer -DFUZZ_OPS_LUA="\"$PWD/fuzz/ops.lua\"" "fuzz/$t.c" $use \
        -o "$F/$t" -llua5.4 -lm -pthread || { echo "fuzz: FAIL (build $t)"; exit 1; }
done

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
run_one() {
    t=$1
    mkdir -p "fuzz/corpus-work/$t" "fuzz/corpus/$t"
    "$F/$t" -max_total_time="$secs" -print_final_stats=1 -timeout=20 -rss_limit_mb=2560 \
        -artifact_prefix="$F/artifacts/$t-" "fuzz/corpus-work/$t" "fuzz/corpus/$t" \
        >"$F/$t.log" 2>&1
    rc=$?
    runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$F/$t.log" | grep -oE '[0-9]+$')
    cov=$(grep -oE 'cov: [0-9]+' "$F/$t.log" | tail -n 1 | grep -oE '[0-9]+')
    corp=$(ls "fuzz/corpus-work/$t" | wc -l)
    if [ "$rc" = 0 ]; then
        echo "fuzz: $t: ok, ${runs:-?} runs in $secs s, cov ${cov:-?}, working corpus $corp"
    else
        echo "fuzz: $t: FAILED (rc $rc, ${runs:-?} runs); log $F/$t.log, artifacts $F/artifacts/"
        grep -E 'ERROR|runtime error|check failed|mismatch|SUMMARY' "$F/$t.log" | head -n 5
        return 1
    fi
}

status=0
set -- $targets
while [ $# -gt 0 ]; do
    if [ "$jobs" -ge 2 ] && [ $# -ge 2 ]; then
        run_one "$1" > "$F/$1.out" & p1=$!
        run_one "$2" > "$F/$2.out" & p2=$!
        wait $p1 || status=1
        wait $p2 || status=1
        cat "$F/$1.out" "$F/$2.out"
        shift 2
    else
        run_one "$1" || status=1
        shift
    fi
done
if [ "$status" = 0 ]; then echo "fuzz: PASS ($secs s per target: $targets)"
else echo "fuzz: FAIL"; exit 1; fi
