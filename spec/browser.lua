-- A real browser as a spec fixture: Debian's chromium, headless, driven by
-- spec/fixtures/browser.js (node and its "ws" over the DevTools protocol).
--
--   local browser = require "browser"       -- like require "helper"
--   assert(browser.available())              -- true, or false and why
--   local results, report = browser.run({ html1, html2 }, 10)
--
-- Each page is an HTML string (written to a file of its own and loaded as
-- file://) or a URL ("http://...", "about:blank", ...: a scheme, no
-- spaces). All pages are open at the same time, each in a tab of its own.
-- A page reports by setting window.__result to any JSON value; run()
-- returns the list of those values (page order) and the whole report of
-- browser.js (results, console = a list of console messages and exceptions
-- per page, timedOut). When a page has no result within timeout seconds
-- (scaled by H.SLOW, counted once chromium is up: its start comes on top),
-- or chromium fails, run() raises, with the pages' console messages and
-- chromium's stderr.
--
-- The Lua loop is never blocked while the browser runs: browser.js runs in
-- the background and writes its report to a file, and run() waits for that
-- file with H.run_until, which serves wsbeat (so the pages can talk to a
-- wsbeat.listen server of the spec's own process). browser.start() returns
-- the run without waiting, for a spec that has more to do meanwhile:
--
--   local r = browser.start(pages, 10)      -- r:finished(), r:wait(), r:stop()
--
-- Cleanup: no chromium outlives a run. browser.js kills chromium's process
-- group on every way out and reports only once that group is empty; it
-- also gives up as soon as this process has exited (--parent), so a test
-- run that dies leaves no browser behind. Here, every run is stopped by
-- the time run()/wait() returns or raises (whatever raised: a timeout, an
-- error from a wsbeat callback served meanwhile); stop() kills browser.js
-- and, from the pid file browser.js writes, chromium's group if anything
-- of it is left; runs still going when the Lua state closes (busted
-- exits) are stopped by a finalizer. A chromium process that outlives a
-- browser.js that finished normally is a bug of the harness: wait() says
-- so (after killing it).
local H = require "helper"
local json = require "dkjson"
local core = require "wsbeat.core"

local B = {}

B.CHROMIUM = "/usr/bin/chromium"
B.SCRIPT = H.ROOT .. "/spec/fixtures/browser.js"
-- browser.js allows chromium 20 s to start (BROWSER_START_TIMEOUT), stops
-- itself 10 s after start + timeout (its watchdog) and waits up to 5 s for
-- chromium's processes to go: wait() gives up after all that and a margin
B.START_ALLOWANCE = 20
B.WATCHDOG_SLACK = 10 + 5 + 5
-- seconds browser.js has to exit after SIGTERM (it kills chromium and
-- waits for its group first), and after its report was written
B.TERM_GRACE = 8
B.EXIT_GRACE = 2

local quote = H.quote
local nrun = 0
local live = {} -- runs not stopped yet

--- true when chromium, node and node's ws are there; else false and why.
function B.available()
	if not H.execute("test -x " .. quote(B.CHROMIUM)) then
		return false, B.CHROMIUM .. " is missing (apt-get install chromium; scripts/install-deps.sh)"
	end
	if not H.execute("command -v node >/dev/null 2>&1") then
		return false, "node is missing (apt-get install nodejs; scripts/install-deps.sh)"
	end
	if not H.read_file(H.ROOT .. "/spec/fixtures/node_modules/ws/package.json") then
		return false, "node's ws is missing (npm ci in spec/fixtures; scripts/install-deps.sh)"
	end
	return true
end

local function is_url(page)
	return page:match("^%a[%w+.-]*:%S*$") ~= nil
end

local function write_file(path, text)
	local f = assert(io.open(path, "w"))
	f:write(text)
	f:close()
end

local function exists(path)
	local f = io.open(path, "r")
	if f then f:close() end
	return f ~= nil
end

local my_pid
--- This process's id (the shell's parent), which browser.js watches.
local function self_pid()
	if not my_pid then
		my_pid = H.sh("echo $PPID"):gsub("%s+$", "")
		assert(my_pid:match("^%d+$"), "cannot tell this process's id: " .. my_pid)
	end
	return my_pid
end

--- The live (not zombie) processes of process group pgid (nil: none) or
-- with `mark` (a plain string) on their command line, but `except` (a pid);
-- a list of pids.
function B.processes(pgid, mark, except)
	local out = {}
	for pid in H.sh("ls /proc 2>/dev/null"):gmatch("%d+") do
		local stat = pid ~= except and H.read_file("/proc/" .. pid .. "/stat")
		-- "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses
		local st, pg = (stat or ""):match("%) (%a) %d+ (%d+)")
		if st and st ~= "Z" then
			local mine = tonumber(pg) == pgid
			if not mine and mark then
				local cmdline = H.read_file("/proc/" .. pid .. "/cmdline")
				mine = cmdline and cmdline:find(mark, 1, true) ~= nil
			end
			if mine then out[#out + 1] = tonumber(pid) end
		end
	end
	return out
end

-- Block (no wsbeat serving: this is cleanup) until pred() or `seconds`.
local function wait_for(pred, seconds)
	local deadline = core.now() + seconds * H.SLOW
	while not pred() do
		if core.now() > deadline then return false end
		H.sleep(0.02)
	end
	return true
end

-- The report's console messages, page by page, for an error message.
local function console_text(report)
	local out = {}
	for i, list in ipairs(type(report) == "table" and type(report.console) == "table" and report.console or {}) do
		if #list > 0 then
			out[#out + 1] = ("console of page %d:"):format(i)
			for _, m in ipairs(list) do out[#out + 1] = "  " .. tostring(m) end
		end
	end
	return table.concat(out, "\n")
end

local Run = {}
Run.__index = Run

--- Start browser.js on the pages (see B.run) in the background and return
-- the run at once. opts (for the harness's own tests): chromium (another
-- executable), parent (the pid browser.js watches instead of this process).
function B.start(pages, timeout, opts)
	assert(type(pages) == "table" and #pages > 0, "browser.start: a list of pages is needed")
	timeout = timeout or 10
	assert(type(timeout) == "number" and timeout > 0, "browser.start: bad timeout")
	opts = opts or {}
	nrun = nrun + 1
	local dir = ("%s/browser-%d"):format(H.tmpdir(), nrun)
	assert(H.execute("mkdir -p " .. quote(dir)), "mkdir " .. dir .. " failed")
	local args = {}
	for i, page in ipairs(pages) do
		assert(type(page) == "string", "browser.start: page " .. i .. " is not a string")
		if is_url(page) then
			args[i] = page
		else
			args[i] = ("%s/page-%d.html"):format(dir, i)
			write_file(args[i], page)
		end
	end
	local run = setmetatable({
		dir = dir,
		report = dir .. "/report.json",
		pidfile = dir .. "/chromium.pid",
		stdout = dir .. "/stdout.txt",
		stderr = dir .. "/stderr.txt",
		timeout = timeout * H.SLOW,
		npages = #pages,
	}, Run)
	-- browser.js [options] PAGE TIMEOUT [PAGE ...]
	local words = { quote(args[1]), ("%g"):format(run.timeout) }
	for i = 2, #args do words[#words + 1] = quote(args[i]) end
	-- TMPDIR: browser.js makes chromium's profile and HOME in there, so
	-- stop() removes them even if browser.js was killed
	local env = { "TMPDIR=" .. quote(dir) }
	if opts.chromium then env[#env + 1] = "BROWSER_CHROMIUM=" .. quote(opts.chromium) end
	-- exec: the background job becomes browser.js, so $! is its pid
	local cmd = ("exec env %s node %s --report %s --pidfile %s --parent %s %s >%s 2>%s </dev/null & echo $!"):format(
		table.concat(env, " "), quote(B.SCRIPT), quote(run.report), quote(run.pidfile),
		quote(opts.parent or self_pid()), table.concat(words, " "), quote(run.stdout), quote(run.stderr))
	local pid = H.sh(cmd):gsub("%s+$", "")
	if not pid:match("^%d+$") then
		H.execute("rm -rf " .. quote(dir))
		error("browser: could not start browser.js: " .. pid, 2)
	end
	run.pid = pid
	live[run] = true
	return run
end

--- Whether browser.js is done: its report is there, or it has exited.
function Run:finished()
	return exists(self.report) or H.exited(self.pid)
end

--- chromium's process group (its pid), once browser.js has started it.
function Run:chromium_pgid()
	local text = H.read_file(self.pidfile)
	return text and tonumber(text:match("^(%d+)"))
end

--- Every live process of this run's chromium: its process group, and
-- whatever has the run's directory on its command line (chromium's crash
-- handlers leave the group; its profile is in there), browser.js aside.
function Run:chromium_processes()
	return B.processes(self:chromium_pgid(), self.dir .. "/", self.pid)
end

-- (dash's kill wants -s SIG, and -- before a process group)
local function signal(sig, target)
	H.execute(("kill -s %s -- %s 2>/dev/null"):format(sig, target))
end

--- Stop the run, whatever its state: browser.js (it ends by itself once
-- it has reported; else SIGTERM, on which it kills chromium and reports,
-- and SIGKILL if that did not end it), then whatever is left of
-- chromium's process group; its files are removed. Idempotent. Returns
-- nil, or what was wrong with the cleanup (a harness bug).
function Run:stop()
	if self.stopped then return self.problem end
	self.stopped = true
	live[self] = nil
	local problems = {}
	local pid = self.pid
	local function gone() return H.exited(pid) end
	local clean = exists(self.report) and wait_for(gone, B.EXIT_GRACE)
	if not clean and not gone() then
		signal("TERM", pid)
		if not wait_for(gone, B.TERM_GRACE) then
			signal("KILL", pid)
			if not wait_for(gone, 2) then
				problems[#problems + 1] = ("browser.js (pid %s) survived SIGKILL"):format(pid)
			end
		end
	end
	local left = self:chromium_processes()
	if #left > 0 then
		local pgid = self:chromium_pgid()
		local function kill_all()
			if pgid then signal("KILL", "-" .. pgid) end
			local now_left = self:chromium_processes()
			if #now_left > 0 then signal("KILL", table.concat(now_left, " ")) end
			return #now_left == 0
		end
		if not wait_for(kill_all, 5) then
			problems[#problems + 1] = ("chromium processes %s survived SIGKILL"):format(
				table.concat(self:chromium_processes(), " "))
		elseif clean then
			problems[#problems + 1] = ("chromium processes %s outlived browser.js (killed now)"):format(
				table.concat(left, " "))
		end
	end
	self.stdout_text = H.read_file(self.stdout) or ""
	self.stderr_text = H.read_file(self.stderr) or ""
	self.report_text = H.read_file(self.report)
	H.execute("rm -rf " .. quote(self.dir))
	self.problem = #problems > 0 and table.concat(problems, "; ") or nil
	return self.problem
end

--- Wait for the run (serving wsbeat meanwhile) and stop it: results,
-- report, or an error that says why there are none.
function Run:wait()
	local limit = self.timeout / H.SLOW + B.START_ALLOWANCE + B.WATCHDOG_SLACK -- (run_until scales it)
	local ok, err = pcall(H.run_until, function() return self:finished() end, limit,
		"browser.js (pid " .. self.pid .. ") to finish")
	self:stop()
	if not ok then error(err, 0) end -- (the run is stopped: whatever raised, raise it on)
	local text = self.report_text
	local report = text and json.decode(text, 1, json.null)
	if self.problem then
		error("browser: " .. self.problem, 2)
	end
	if type(report) == "table" and type(report.results) == "table" and not report.error
		and not report.timedOut and #report.results == self.npages then
		-- JSON null comes back as json.null: a page may report null
		return report.results, report
	end
	local why
	if type(report) == "table" and report.error then
		why = tostring(report.error)
	elseif not text then
		why = "browser.js exited without a report"
	else
		why = "browser.js wrote a report that is not one"
	end
	local parts = { "browser: " .. why }
	local console = console_text(report)
	if console ~= "" then parts[#parts + 1] = console end
	local stderr = self.stderr_text:gsub("%s+$", "")
	if stderr ~= "" then parts[#parts + 1] = "stderr of browser.js:\n" .. stderr end
	local stdout = self.stdout_text:gsub("%s+$", "")
	if stdout ~= "" then parts[#parts + 1] = "stdout of browser.js:\n" .. stdout end
	if text and type(report) ~= "table" then parts[#parts + 1] = "report:\n" .. text end
	error(table.concat(parts, "\n"), 2)
end

--- Open every page at once in headless chromium; wait for each one's
-- window.__result, serving wsbeat meanwhile. Returns results (a list, page
-- order), report.
function B.run(pages, timeout, opts)
	local run = B.start(pages, timeout, opts)
	local res = H.pack(pcall(run.wait, run))
	if not res[1] then error(res[2], 2) end
	return H.unpack(res, 2, res.n)
end

--- Stop every run still going (for a teardown; the finalizer below does
-- it too when the Lua state closes).
function B.stop_all()
	local runs = {}
	for run in pairs(live) do runs[#runs + 1] = run end
	for _, run in ipairs(runs) do pcall(run.stop, run) end
end

-- when busted exits (os.exit closes the state), no run outlives it
B._finalizer = setmetatable({}, { __gc = function() B.stop_all() end })

return B
