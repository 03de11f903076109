-- heartbeat: ARGV[6..] node, ttl (ms). Tail: whether the node had been
-- swept as dead (1) or is new, then the gauges: rooms, away, held.
local node, ttl = ARGV[6], tonumber(ARGV[7])
redis.call('SET', P .. 'node:' .. node, '1', 'PX', ttl)
local added = redis.call('SADD', P .. 'nodes', node)
local away = tonumber(redis.call('GET', P .. 'away') or '0')
local held = tonumber(redis.call('GET', P .. 'held') or '0')
return finish({added, redis.call('SCARD', P .. 'rooms'), away, held})
