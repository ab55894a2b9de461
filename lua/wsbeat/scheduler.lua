--- wsbeat.scheduler: the coroutines behind wsbeat.spawn.
-- A spawned coroutine runs until its receive() has nothing to return; it
-- then parks here and is resumed by schedule() once a message, the close
-- or its deadline comes.  The clock and the write batching are passed in
-- (the C core's now/cork/uncork), so the rules can be run without a network.
local pairs, next, pcall, tostring, type = pairs, next, pcall, tostring, type
local co_create, co_resume, co_status, co_yield =
	coroutine.create, coroutine.resume, coroutine.status, coroutine.yield
local traceback, table_concat = debug.traceback, table.concat

local M = {}

--- A scheduler.  hooks.now() -> seconds (monotonic); hooks.cork() and
-- hooks.uncork() bracket the resumes of one schedule() so that what the
-- coroutines send leaves in one write per client.
---@param hooks { now: fun(): number, cork: fun(), uncork: fun() }
---@return wsbeat.Scheduler
function M.new(hooks)
	local now, cork, uncork = hooks.now, hooks.cork, hooks.uncork
	local spawned = {}      -- coroutine -> true, for every live spawn
	local waiting = {}      -- coroutine -> { ws = ws, deadline = t }
	local nspawned = 0

	-- Resume co; nil, or the error to raise (with the coroutine's traceback).
	local function resume(co, ...)
		local ok, err = co_resume(co, ...)
		if co_status(co) == "dead" then
			spawned[co] = nil
			waiting[co] = nil
			nspawned = nspawned - 1
			if not ok then
				-- (an error object whose __tostring fails must not raise here:
				-- the scheduler is half way through a turn)
				local okm, msg = pcall(tostring, err)
				if not okm or type(msg) ~= "string" then msg = "(error object is not a string)" end
				return traceback(co, msg)
			end
		elseif not ok then
			return tostring(err) -- not resumable (e.g. running): not a yield
		elseif not waiting[co] then
			-- it yielded, but not from receive(): nothing would ever resume
			-- it, and run() would wait for it forever
			spawned[co] = nil
			nspawned = nspawned - 1
			return traceback(co, "wsbeat.spawn: the coroutine yielded outside receive() " ..
				"(only receive() may yield to wsbeat's scheduler); it is dropped")
		end
		return nil
	end

	---@class wsbeat.Scheduler
	local S = {}

	--- Wake the spawned coroutines whose receive() can complete; nil, or
	-- the errors they raised, one per line.  The ready ones are collected
	-- first and resumed afterwards: a resumed coroutine may spawn others
	-- that wait, and adding keys to `waiting` while pairs() walks it breaks
	-- the walk ("invalid key to 'next'").
	---@return string?
	function S.schedule()
		if next(waiting) == nil then return nil end
		local t = now()
		local ready, n = nil, 0
		for co, w in pairs(waiting) do
			local data, kind = w.ws:_pop()
			local r1, r2
			if data then
				r1, r2 = data, kind
			elseif w.ws:state() == "closed" then
				r1, r2 = nil, "closed"
			elseif w.deadline and t >= w.deadline then
				r1, r2 = nil, "timeout"
			end
			if r2 then
				ready = ready or {}
				ready[n + 1], ready[n + 2], ready[n + 3] = co, r1, r2
				n = n + 3
			end
		end
		-- every ready one is resumed (each holds its message already); errors
		-- are raised together afterwards.  What they send leaves in one write
		-- per client when they have all run, as from callbacks.
		local errs
		if n > 0 then cork() end
		for i = 1, n, 3 do
			local co = ready[i]
			waiting[co] = nil
			local err = resume(co, ready[i + 1], ready[i + 2])
			if err then
				errs = errs or {}
				errs[#errs + 1] = err
			end
		end
		if n > 0 then uncork() end
		return errs and table_concat(errs, "\n")
	end

	--- Seconds until the earliest receive() deadline of a parked coroutine
	-- (0 when one is due), nil when none has a deadline.
	---@return number?
	function S.waiting_timeout()
		if next(waiting) == nil then return nil end
		local t, n = nil, now()
		for _, w in pairs(waiting) do
			if w.deadline then
				local d = w.deadline - n
				if d < 0 then d = 0 end
				if not t or d < t then t = d end
			end
		end
		return t
	end

	--- Start fn(...) as a spawned coroutine and run it to its first wait.
	-- Returns the coroutine and nil, or the coroutine and the error to raise.
	---@param fn function
	---@return thread, string?
	function S.spawn(fn, ...)
		local co = co_create(fn)
		spawned[co] = true
		nspawned = nspawned + 1
		return co, resume(co, ...)
	end

	--- Whether co is a live spawned coroutine (its receive() parks here).
	---@param co thread
	---@return boolean
	function S.is_spawned(co)
		return spawned[co] == true
	end

	--- Park the running spawned coroutine co until ws has a message, is
	-- closed or deadline (a now() value, or nil for none) passes; returns
	-- what receive() returns then.
	---@param co thread
	---@param ws wsbeat.Client
	---@param deadline number?
	---@return string?, string
	function S.wait(co, ws, deadline)
		waiting[co] = { ws = ws, deadline = deadline }
		return co_yield()
	end

	--- Whether a spawned coroutine is still alive (run() waits for it).
	---@return boolean
	function S.busy()
		return nspawned > 0
	end

	return S
end

return M
