-- Builds mtmsg with LuaRocks' builtin backend: `luarocks make rockspecs/mtmsg-scm-0.rockspec`.
-- The source list matches the Makefile (every src/*.c); the version lives only here
-- (the Makefile reads it from the MTMSG_VERSION define below).
package = "mtmsg"
version = "scm-0"
source = {
   url = "git+file:///dev/null",   -- local builds only: luarocks make uses the working tree
}
description = {
   summary = "Message buffers for communication between threads of a Lua program",
   detailed = [[
      mtmsg gives Lua states running in parallel (llthreads2, Lanes, native threads)
      fast, thread-safe message buffers and listeners, independent of the threading
      library, with native C APIs for sending and receiving without a Lua state.
   ]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.1, < 5.5",
}
build = {
   type = "builtin",
   modules = {
      mtmsg = {
         sources = {
            "src/buffer.c", "src/capi.c", "src/carray.c", "src/class.c", "src/codec.c", "src/compat.c",
            "src/error.c", "src/listener.c", "src/main.c", "src/membuf.c", "src/reader.c",
            "src/registry.c", "src/sync.c", "src/sync_c11.c", "src/sync_posix.c",
            "src/sync_pthread.c", "src/sync_win32.c", "src/wakeup.c", "src/writer.c",
         },
         incdirs = { "src", "include" },
         defines = { 'MTMSG_VERSION="0.5.0"' },
      },
   },
   -- Per platform (README "Platforms"). LuaRocks merges these tables into the module
   -- key by key, arrays included, so each platform adds defines after index 1.
   -- src/sync.h picks the thread and atomics backends itself; these only make the
   -- choice explicit where it matters.
   platforms = {
      unix = {         -- Linux, the BSDs, macOS: pthreads, POSIX headers
         modules = { mtmsg = {
            defines = { [2] = "_POSIX_C_SOURCE=200809L" },
            libraries = { "pthread" },
         } },
      },
      macosx = {       -- no pthread_condattr_setclock: realtime condvar deadlines
         modules = { mtmsg = { defines = { [3] = "MTMSG_PORTABLE_POSIX" } } },
      },
      windows = {      -- SRWLOCK/CONDITION_VARIABLE; MSVC gets Interlocked atomics,
                       -- mingw its GCC builtins; no -pthread, nothing extra to link
         modules = { mtmsg = { defines = { [2] = "MTMSG_USE_WIN32" } } },
      },
   },
   -- headers of the C APIs (installed in the rock tree, for native consumers) and docs
   copy_directories = { "include", "docs" },
}
