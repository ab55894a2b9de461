/*
 * One source for Lua 5.1-5.4 and LuaJIT 2.1.  The core is written against
 * 5.4's C API; for 5.1-5.3 and LuaJIT, Debian's lua-compat53 supplies what
 * 5.3 added (static copies in each file: no symbol of ours to clash with a
 * host's), and this file the one 5.4 idiom left: userdata with several
 * user values.  Before 5.4 a userdata has one (5.2, 5.3) or an environment
 * table (5.1, LuaJIT), so the values live in a table that is that one.
 */
#ifndef WSBEAT_COMPAT_H
#define WSBEAT_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 503
#include "compat-5.3.h"
#endif

#if LUA_VERSION_NUM < 504
void *wsb_newuserdatauv(lua_State *L, size_t size, int nuv);
int wsb_getiuservalue(lua_State *L, int idx, int n);
int wsb_setiuservalue(lua_State *L, int idx, int n);
#define lua_newuserdatauv wsb_newuserdatauv
#define lua_getiuservalue wsb_getiuservalue
#define lua_setiuservalue wsb_setiuservalue
#endif

#ifndef luaL_pushfail /* (5.4: the nil of a nil, message return) */
#define luaL_pushfail(L) lua_pushnil(L)
#endif

#endif
