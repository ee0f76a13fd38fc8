/*
 * fuzz_ops: random sequences of buffer / listener / writer / reader operations checked
 * against a model (libFuzzer target). The model and the interpreter of the input bytes
 * are in fuzz/ops.lua; this driver runs it in a fresh Lua 5.4 state per input with the
 * mtmsg objects linked in, and aborts (a finding) when the model raises. After each
 * input the global abort flag is cleared and the state closed, so every object is
 * released: leaks show up in LeakSanitizer.
 * Build and run: scripts/fuzz.sh (make fuzz).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#if !defined(FUZZ_OPS_LUA)
#define FUZZ_OPS_LUA "fuzz/ops.lua"
#endif

int luaopen_mtmsg(lua_State *L);

static char *script;
static size_t scriptlen;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    FILE *f = fopen(FUZZ_OPS_LUA, "rb");
    long n;
    (void)argc; (void)argv;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "fuzz_ops: cannot read %s\n", FUZZ_OPS_LUA);
        abort();
    }
    script = malloc((size_t)n + 1);
    if (!script || fread(script, 1, (size_t)n, f) != (size_t)n) abort();
    scriptlen = (size_t)n;
    fclose(f);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L;
    if (size > 4096) return 0;                  /* keep single runs short */
    L = luaL_newstate();
    if (!L) abort();
    luaL_openlibs(L);
    luaL_requiref(L, "mtmsg", luaopen_mtmsg, 0);
    lua_pop(L, 1);
    if (luaL_loadbuffer(L, script, scriptlen, "=ops.lua") != LUA_OK
        || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_ops: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_ops: model mismatch: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_settop(L, 0);
    /* never leave the process-wide abort flag set for the next input */
    if (luaL_dostring(L, "require('mtmsg').abort(false)") != LUA_OK) abort();
    lua_close(L);
    return 0;
}
