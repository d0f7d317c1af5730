-- Counts, per wrk thread, the responses it got. Run with as many threads
-- as connections (-tN -cN), so each thread is one connection; done()
-- prints how many connections were answered at least once.
local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	answered = 0
end

function response(status, headers, body)
	answered = answered + 1
end

function done(summary, latency, requests)
	local served = 0
	for _, t in ipairs(threads) do
		if t:get("answered") > 0 then
			served = served + 1
		end
	end
	io.write(string.format("served %d/%d\n", served, #threads))
end
