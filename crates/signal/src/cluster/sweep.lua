-- sweep, run by every node now and then; atomic, so each expiry happens
-- once. ARGV[6] = the most deadlines handled per run.
-- 1. Nodes whose heartbeat expired: their online peers go away, as if
--    each transport had dropped (their grace starts now).
for _, node in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
  if redis.call('EXISTS', P .. 'node:' .. node) == 0 then
    for _, m in ipairs(redis.call('SMEMBERS', okey(node))) do
      local room, peer, sid = split3(m)
      local rec = load(room, peer)
      if rec and rec.on and rec.sid == sid then go_away(room, peer, rec) end
    end
    redis.call('DEL', okey(node))
    redis.call('SREM', P .. 'nodes', node)
  end
end
-- 2. Grace periods that ended: the room hears `peer-left` (timeout).
local due = redis.call('ZRANGEBYSCORE', P .. 'deadlines', '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[6]))
for _, m in ipairs(due) do
  redis.call('ZREM', P .. 'deadlines', m)
  local room, peer, epoch = split3(m)
  local rec = load(room, peer)
  if rec and not rec.on and tostring(rec.epoch) == epoch then remove(room, peer, rec, 'timeout') end
end
return finish({})
