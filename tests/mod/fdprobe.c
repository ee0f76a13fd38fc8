/*
 * fdprobe: file-descriptor checks for the event-loop specs (test-only), so that the
 * wake-up handles can be tested without any event-loop package:
 *   fdprobe.readable(fd [, seconds])  poll(2) for POLLIN, waiting up to seconds (0)
 *   fdprobe.flags(fd)                 nonblocking, close-on-exec (booleans), or nil
 *   fdprobe.nfds()                    open descriptors of the process (/proc/self/fd),
 *                                     or nil where that directory does not exist
 * On Windows every function returns nil (wake-up handles are not supported there).
 */
#if !defined(_WIN32)
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#endif

#include "lua.h"
#include "lauxlib.h"

#if defined(_WIN32)
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

#if defined(_WIN32)
static int l_none(lua_State *L) { (void)L; return 0; }
#define l_readable l_none
#define l_flags l_none
#define l_nfds l_none
#else
static int l_readable(lua_State *L) {
    struct pollfd p;
    int fd = (int)luaL_checknumber(L, 1), rc;
    double s = luaL_optnumber(L, 2, 0);
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    do rc = poll(&p, 1, s < 0 ? -1 : (int)(s * 1000.0));
    while (rc < 0);                         /* EINTR */
    if (p.revents & POLLNVAL) return luaL_error(L, "fdprobe: descriptor %d is not open", fd);
    lua_pushboolean(L, rc > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0);
    return 1;
}

static int l_flags(lua_State *L) {
    int fd = (int)luaL_checknumber(L, 1);
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    if (fl < 0 || fdfl < 0) return 0;
    lua_pushboolean(L, (fl & O_NONBLOCK) != 0);
    lua_pushboolean(L, (fdfl & FD_CLOEXEC) != 0);
    return 2;
}

static int l_nfds(lua_State *L) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;
    if (!d) return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    lua_pushnumber(L, (lua_Number)(n - 1));     /* not the directory's own descriptor */
    return 1;
}
#endif

EXPORT int luaopen_fdprobe(lua_State *L);

EXPORT int luaopen_fdprobe(lua_State *L) {
    lua_newtable(L);
    lua_pushcfunction(L, l_readable);
    lua_setfield(L, -2, "readable");
    lua_pushcfunction(L, l_flags);
    lua_setfield(L, -2, "flags");
    lua_pushcfunction(L, l_nfds);
    lua_setfield(L, -2, "nfds");
    return 1;
}
