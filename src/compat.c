/* 5.4's user values on 5.1-5.3 and LuaJIT (compat.h says how). */
#include "compat.h"

#if LUA_VERSION_NUM < 504
void *wsb_newuserdatauv(lua_State *L, size_t size, int nuv)
{
	void *p = lua_newuserdata(L, size);

	if (nuv > 0) {
		lua_createtable(L, nuv, 0);
		lua_setuservalue(L, -2);
	}
	return p;
}

/* Pushes user value n (nil when there is none), returns its type or
 * LUA_TNONE, as 5.4 does. */
int wsb_getiuservalue(lua_State *L, int idx, int n)
{
	idx = lua_absindex(L, idx);
	lua_getuservalue(L, idx);
	if (!lua_istable(L, -1)) {
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
	lua_getuservalue(L, idx);
	if (!lua_istable(L, -1)) {
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
