--- What the bench summaries share (summary.lua, server-summary.lua,
-- server-scale-summary.lua, openresty/summary.lua; loaded with dofile
-- from their own directory): the median of a metric over the rounds, and
-- a list that keeps the order things were first seen in.
local M = {}

--- The median of t (not changed), nil when t is nil or empty.
function M.median(t)
	if not t or #t == 0 then return nil end
	local s = table.move(t, 1, #t, 1, {})
	table.sort(s)
	local n = #s
	if n % 2 == 1 then return s[(n + 1) // 2] end
	return (s[n // 2] + s[n // 2 + 1]) / 2
end

--- Append v to list unless it is there already.
function M.once(list, v)
	for _, x in ipairs(list) do if x == v then return end end
	list[#list + 1] = v
end

return M
