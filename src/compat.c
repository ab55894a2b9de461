/* 5.4's user values on 5.1-5.3 and LuaJIT (compat.h says how). */
#include "compat.h"

#if LUA_VERSION_NUM < 504
/* Pushes the userdata's one slot: its user value (5.2, 5.3) or its
 * environment (5.1, LuaJIT).  A 5.1 userdata always has an environment,
 * by default the globals of the function that made it: only a table of
 * ours counts, so that one reads as none. */
static int slot_get(lua_State *L, int idx)
{
#if LUA_VERSION_NUM == 501
	lua_getfenv(L, idx);
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	if (lua_rawequal(L, -1, -2)) {
		lua_pop(L, 2);
		lua_pushnil(L);
		return 0;
	}
	lua_pop(L, 1);
#else
	lua_getuservalue(L, idx);
#endif
	return lua_istable(L, -1);
}

void *wsb_newuserdatauv(lua_State *L, size_t size, int nuv)
{
	void *p = lua_newuserdata(L, size);

	if (nuv > 0) {
		lua_createtable(L, nuv, 0);
#if LUA_VERSION_NUM == 501
		lua_setfenv(L, -2);
#else
		lua_setuservalue(L, -2);
#endif
	}
	return p;
}

/* Pushes user value n (nil when there is none), returns its type or
 * LUA_TNONE, as 5.4 does. */
int wsb_getiuservalue(lua_State *L, int idx, int n)
{
	idx = lua_absindex(L, idx);
	if (!slot_get(L, idx)) {
		lua_pop(L, 1);
		lua_pushnil(L);
		return LUA_TNONE;
	}
	lua_rawgeti(L, -1, n);
	lua_remove(L, -2);
	return lua_type(L, -1);
}

/* Pops the value into user value n; 0 when the userdata has none. */
int wsb_setiuservalue(lua_State *L, int idx, int n)
{
	idx = lua_absindex(L, idx);
	if (!slot_get(L, idx)) {
		lua_pop(L, 2);
		return 0;
	}
	lua_insert(L, -2);
	lua_rawseti(L, -2, n);
	lua_pop(L, 1);
	return 1;
}
#else
typedef int wsb_compat_unused; /* (ISO C: no empty translation unit) */
#endif
