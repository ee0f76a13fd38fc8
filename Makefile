# mtmsg: build, test and check targets.
#   make                 build mtmsg.so for Lua 5.4 (also build/5.4/mtmsg.so)
#   make LUA=5.1|5.2|5.3|5.4|luajit   build for another Lua (build/$(LUA)/)
#   make test            run the test suite on all five Lua versions
#   make check           run the test suite on $(LUA) only
#   make demo            build and run the examples
#   make deps            install the Debian packages the targets need
#   make asan tsan valgrind fuzz bench     see docs/RELIABILITY.md, docs/BENCHMARKS.md

# Lua version to build for: 5.1, 5.2, 5.3, 5.4 or luajit
LUA ?= 5.4
ifeq ($(LUA),luajit)
# Where lua.h is (Debian layout by default)
LUA_INCDIR ?= /usr/include/luajit-2.1
# The interpreter that runs the tests and examples
LUA_BIN ?= luajit
else
LUA_INCDIR ?= /usr/include/lua$(LUA)
LUA_BIN ?= lua$(LUA)
endif
LUA_VERSIONS = 5.1 5.2 5.3 5.4 luajit

# The version lives in the rockspec only (its MTMSG_VERSION define).
ROCKSPEC = rockspecs/mtmsg-scm-0.rockspec
MTMSG_VERSION := $(shell sed -n "s/.*'MTMSG_VERSION=\"\([^\"]*\)\"'.*/\1/p" $(ROCKSPEC))

# Compiler and flags; override CC/CFLAGS/LDFLAGS freely (make CC=clang CFLAGS=-O0)
CC ?= cc
OPT ?= -O2 -g
WARN = -Wall -Wextra -Wshadow -Wundef -Wmissing-prototypes -Wstrict-prototypes \
       -Wcast-qual -Wpointer-arith -Wwrite-strings -Wno-unused-parameter
CFLAGS ?= $(OPT)
# C standard: c99, or c11 for the C11 threads/stdatomic backend (make test-c11)
CSTD ?= c99
ALL_CFLAGS = -std=$(CSTD) -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARN) \
             -I$(LUA_INCDIR) -Isrc -Iinclude -DMTMSG_VERSION='"$(MTMSG_VERSION)"' $(CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS ?=
ALL_LDFLAGS = -shared -pthread $(LDFLAGS) $(EXTRA_LDFLAGS)

BUILD = build/$(LUA)$(VARIANT)
SRCS = $(sort $(wildcard src/*.c))
HDRS = $(wildcard src/*.h include/*.h)
OBJS = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
# Test-only C modules (thread helper, carray provider, C API probe): tests/mod/<name>.c
TESTMODS = $(patsubst tests/mod/%.c,$(BUILD)/%.so,$(wildcard tests/mod/*.c))
# Benchmark C modules: bench/mod/<name>.c
BENCHMODS = $(patsubst bench/mod/%.c,$(BUILD)/%.so,$(wildcard bench/mod/*.c))

.PHONY: all lib testmods benchmods test check demo deps asan tsan valgrind fuzz bench bench-flow bench-tables clean

all: lib
ifeq ($(LUA)$(VARIANT),5.4)
	cp $(BUILD)/mtmsg.so mtmsg.so
endif

lib: $(BUILD)/mtmsg.so

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/mtmsg.so: $(OBJS)
	$(CC) $(OBJS) -o $@ $(ALL_LDFLAGS)

$(BUILD)/%.so: tests/mod/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(ALL_LDFLAGS)

$(BUILD)/%.so: bench/mod/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(ALL_LDFLAGS)

testmods: lib $(TESTMODS)
benchmods: lib $(BENCHMODS)

# The whole suite on every Lua version; prints "N passed, M failed" last.
test: deps
	@sh tests/run.sh $(LUA_VERSIONS)

# The suite on $(LUA) only.
check: testmods
	@sh tests/run.sh $(LUA)

demo: deps
	@$(MAKE) --no-print-directory testmods
	@sh examples/run.sh $(LUA)

deps:
	@sh scripts/deps.sh

clean:
	rm -rf build mtmsg.so

# Reliability and speed (see docs/RELIABILITY.md and docs/BENCHMARKS.md)
#   make asan        suite under ASan+UBSan+LSan, then failalloc under ASan
#   make tsan        threaded specs + stress under TSan (MTMSG_STRESS_SECONDS=n: long)
#   make valgrind    suite under memcheck
#   make fuzz        each libFuzzer target FUZZ_SECONDS (default 10) from its corpus
#   make apifuzz     the Lua API fuzzer under ASan+UBSan and TSan, APIFUZZ_SECONDS each
#                    (APIFUZZ_CONFIGS="asan asan-5.1 asan-luajit tsan plain-5.3" picks)
#   make failalloc   allocation-failure injection alone (FAILALLOC=plain: no sanitizer)
#   make stress      the stress spec alone, long (MTMSG_STRESS_SECONDS, default 60)
.PHONY: failalloc stress apifuzz
asan:
	@sh scripts/asan.sh
tsan:
	@sh scripts/tsan.sh
valgrind:
	@sh scripts/valgrind.sh
fuzz:
	@sh scripts/fuzz.sh $(FUZZ_SECONDS)
failalloc:
	@sh scripts/failalloc.sh $(FAILALLOC)
apifuzz:
	@sh scripts/apifuzz.sh $(APIFUZZ_CONFIGS)
stress: testmods
	@MTMSG_STRESS_SECONDS=$${MTMSG_STRESS_SECONDS:-60} SPECS=tests/stress_spec.lua sh tests/run.sh $(LUA)
bench:
	@sh bench/run.sh
# make bench with BEFORE=<git rev> built in /tmp as the "-before" rows (bench/compare.sh)
.PHONY: bench-compare
bench-compare:
	@sh bench/compare.sh "$(BEFORE)"
# Event loops (bench/eventloop.lua, docs/BENCHMARKS.md): luv + lua-posix on Lua 5.3
.PHONY: bench-eventloop
bench-eventloop: deps
	@$(MAKE) --no-print-directory -s LUA=5.3 testmods
	@LUA_CPATH="build/5.3/?.so;;" lua5.3 bench/eventloop.lua

# The flow-control pipeline benchmark (bounded 64 vs unbounded), separate from make bench.
bench-flow:
	@sh bench/flow.sh

# tables as message elements against lua-cjson / lua-messagepack strings (docs/BENCHMARKS.md)
bench-tables:
	@$(MAKE) --no-print-directory -s LUA=5.4 lib && LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/tables.lua

# Windows x64, cross-compiled with mingw-w64 against a Lua 5.4 DLL built from Debian's
# lua5.4 source (scripts/winlua.sh, into build/win64/lua/); see README "Windows".
#   make windows         build/win64/{mtmsg,testthread,carray,capiprobe}.dll
#                        (WIN_VARIANT=-x WIN_EXTRA_CFLAGS=...: another build in build/win64-x/)
#   make test-windows    those, then the Lua specs under wine (scripts/wintest.sh), also
#                        with the Interlocked atomics that MSVC builds use
.PHONY: windows test-windows
WIN_CC ?= x86_64-w64-mingw32-gcc
WIN_BUILD = build/win64$(WIN_VARIANT)
WIN_LUA = build/win64/lua
WIN_CFLAGS = -std=c99 $(WARN) -I$(WIN_LUA)/include -Isrc -Iinclude \
             -DMTMSG_VERSION='"$(MTMSG_VERSION)"' $(OPT) $(WIN_EXTRA_CFLAGS)
WIN_LDFLAGS = -shared -static-libgcc $(WIN_LUA)/liblua54.dll.a $(WIN_EXTRA_LDFLAGS)
WIN_OBJS = $(patsubst src/%.c,$(WIN_BUILD)/obj/%.o,$(SRCS))
WIN_TESTMODS = $(patsubst tests/mod/%.c,$(WIN_BUILD)/%.dll,$(wildcard tests/mod/*.c))

windows: $(WIN_BUILD)/mtmsg.dll $(WIN_TESTMODS)

$(WIN_LUA)/liblua54.dll.a:
	@sh scripts/winlua.sh

$(WIN_BUILD)/obj/%.o: src/%.c $(HDRS) $(WIN_LUA)/liblua54.dll.a
	@mkdir -p $(dir $@)
	$(WIN_CC) $(WIN_CFLAGS) -c $< -o $@

$(WIN_BUILD)/mtmsg.dll: $(WIN_OBJS)
	$(WIN_CC) $(WIN_OBJS) -o $@ $(WIN_LDFLAGS)

$(WIN_BUILD)/%.dll: tests/mod/%.c $(HDRS) $(WIN_LUA)/liblua54.dll.a
	$(WIN_CC) $(WIN_CFLAGS) $< -o $@ $(WIN_LDFLAGS)

test-windows:
	@sh scripts/wintest.sh

# Port builds (scripts/ports.sh; README "Platforms"), each the whole suite on Lua 5.4:
#   make test-portable   pthread build with MTMSG_PORTABLE_POSIX (what macOS offers)
#   make test-c11        C11 threads.h + stdatomic.h backend, then its TSan run
#   make test-i386       gcc -m32 module under an i386 Lua (packages unpacked, not installed)
#   make test-ports      all three and cross-win
#   make cross-win       compile-only check of the Win32 backend with mingw-w64
.PHONY: test-portable test-c11 test-i386 test-ports cross-win
test-portable: deps
	@sh scripts/ports.sh portable
test-c11: deps
	@sh scripts/ports.sh c11
test-i386: deps
	@sh scripts/ports.sh i386
test-ports: deps
	@sh scripts/ports.sh
cross-win:
	@sh scripts/ports.sh win32cc
