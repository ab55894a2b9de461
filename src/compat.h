/*
 * One source for Lua 5.1-5.4 and LuaJIT 2.1.  The core is written against
 * 5.4's C API; this header supplies, for the older ones, the part of it
 * the core uses, and nothing else.  Our own shims rather than a compat
 * library's header: a luarocks build then needs no header the user may not
 * have, and each shim is static or prefixed wsb_, so nothing of ours can
 * clash with a host that links its own compat copy.
 *
 * What is emulated, by version:
 *  - 5.1 and LuaJIT (both LUA_VERSION_NUM 501): the 5.2 names the core
 *    uses (lua_absindex, lua_rawlen, luaL_len, lua_rawgetp/setp,
 *    luaL_setfuncs, luaL_newlib, luaL_setmetatable, luaL_testudata;
 *    LuaJIT has some of them, ours are used on both so the two behave
 *    alike);
 *  - 5.1, 5.2: 5.3's typed returns of lua_getfield, lua_rawget(i/p);
 *  - 5.1-5.3: a userdata with several user values (lua_newuserdatauv):
 *    before 5.4 a userdata has one user value (5.2, 5.3) or an environment
 *    table (5.1, LuaJIT), so the values live in a table that is that one
 *    (src/compat.c);
 *  - 5.1, 5.2: luaL_checkinteger/optinteger refuse a number with a
 *    fraction, as 5.3+ does (they truncated it);
 *  - 5.1-5.3: luaL_pushfail.
 */
#ifndef WSBEAT_COMPAT_H
#define WSBEAT_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM == 501
#ifndef LUA_OK
#define LUA_OK 0
#endif

static inline int wsb_absindex(lua_State *L, int idx)
{
	return (idx > 0 || idx <= LUA_REGISTRYINDEX) ? idx : lua_gettop(L) + idx + 1;
}
#define lua_absindex wsb_absindex

#define lua_rawlen(L, i) lua_objlen(L, (i))
/* (5.1 honours no __len on tables: the raw length is what it has) */
#define luaL_len(L, i) ((lua_Integer)lua_objlen(L, (i)))

static inline void wsb_rawsetp(lua_State *L, int idx, const void *p)
{
	idx = wsb_absindex(L, idx);
	lua_pushlightuserdata(L, (void *)p);
	lua_insert(L, -2);
	lua_rawset(L, idx);
}
#define lua_rawsetp wsb_rawsetp

static inline void wsb_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
	luaL_checkstack(L, nup + 1, "too many upvalues");
	for (; l->name; l++) {
		for (int i = 0; i < nup; i++)
			lua_pushvalue(L, -nup);
		lua_pushcclosure(L, l->func, nup);
		lua_setfield(L, -(nup + 2), l->name);
	}
	lua_pop(L, nup);
}
#define luaL_setfuncs wsb_setfuncs

#define wsb_newlib(L, l) \
	(lua_createtable(L, 0, (int)(sizeof(l) / sizeof((l)[0]) - 1)), wsb_setfuncs(L, (l), 0))
#undef luaL_newlib
#define luaL_newlib wsb_newlib

static inline void wsb_setmetatable(lua_State *L, const char *tname)
{
	luaL_getmetatable(L, tname);
	lua_setmetatable(L, -2);
}
#define luaL_setmetatable wsb_setmetatable

static inline void *wsb_testudata(lua_State *L, int idx, const char *tname)
{
	void *p = lua_touserdata(L, idx);

	if (!p || !lua_getmetatable(L, idx))
		return NULL;
	luaL_getmetatable(L, tname);
	if (!lua_rawequal(L, -1, -2))
		p = NULL;
	lua_pop(L, 2);
	return p;
}
#define luaL_testudata wsb_testudata
#endif /* 501 */

#if LUA_VERSION_NUM < 503
/* 5.3's getters answer the type of what they pushed; the core tests it */
static inline int wsb_getfield(lua_State *L, int idx, const char *k)
{
	lua_getfield(L, idx, k);
	return lua_type(L, -1);
}
static inline int wsb_rawget(lua_State *L, int idx)
{
	lua_rawget(L, idx);
	return lua_type(L, -1);
}
static inline int wsb_rawgeti(lua_State *L, int idx, lua_Integer n)
{
	lua_rawgeti(L, idx, (int)n);
	return lua_type(L, -1);
}
#if LUA_VERSION_NUM == 501
static inline int wsb_rawgetp(lua_State *L, int idx, const void *p)
{
	idx = wsb_absindex(L, idx);
	lua_pushlightuserdata(L, (void *)p);
	lua_rawget(L, idx);
	return lua_type(L, -1);
}
#else
static inline int wsb_rawgetp(lua_State *L, int idx, const void *p)
{
	lua_rawgetp(L, idx, p);
	return lua_type(L, -1);
}
#endif
#define lua_getfield wsb_getfield
#define lua_rawget wsb_rawget
#define lua_rawgeti wsb_rawgeti
#define lua_rawgetp wsb_rawgetp
#endif /* < 503 */

#if LUA_VERSION_NUM < 503
/* Before 5.3 an integer argument is a double that luaL_checkinteger
 * truncates: 1000.5 would pass as a close code.  Refused as 5.3+ refuses
 * it, with its words ("number has no integer representation"). */
static inline lua_Integer wsb_checkinteger(lua_State *L, int arg)
{
	lua_Number n = luaL_checknumber(L, arg);
	lua_Integer i;

	/* (out of range or NaN: the cast itself would be undefined) */
	if (!(n >= -9007199254740992.0 && n <= 9007199254740992.0))
		luaL_argerror(L, arg, "number has no integer representation");
	i = (lua_Integer)n;
	if ((lua_Number)i != n)
		luaL_argerror(L, arg, "number has no integer representation");
	return i;
}
static inline lua_Integer wsb_optinteger(lua_State *L, int arg, lua_Integer def)
{
	return lua_isnoneornil(L, arg) ? def : wsb_checkinteger(L, arg);
}
#undef luaL_checkinteger
#undef luaL_optinteger
#define luaL_checkinteger wsb_checkinteger
#define luaL_optinteger wsb_optinteger
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
