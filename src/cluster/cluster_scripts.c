/*
 * The Lua scripts the hosts run in Redis (src/cluster/cluster_internal.h). Each runs atomically
 * on Redis's own clock (TIME), so the hosts' clocks never need to agree.
 *
 * The permits set holds one member per request of any host that counts in the server's window:
 * its score is when it stops counting, a lease (timeout + window) while in flight, its answer +
 * window once answered. The waiters set queues the hosts asking, oldest first; a host goes to
 * its back after each permit (round robin), and one that stopped asking (asked, a hash of when
 * each host asked last) leaves the queue after `stale` ms.
 */
#include "cluster_internal.h"

/* One Lua line per C line: */
/* clang-format off */
#define NOW "local t = redis.call('TIME')\n"                                                       \
            "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

const char *const cluster_script_names[SCRIPT_COUNT] = {
    "acquire", "release",      "carry",        "pause",       "token_get", "token_put",
    "token_unlock", "dedupe_claim", "dedupe_done", "dedupe_drop", "beat"};

const char *const cluster_scripts[SCRIPT_COUNT] = {
    /* ACQUIRE: KEYS permits pause waiters asked; ARGV rate lease host member stale cap.
     * Returns 0 (granted) or the ms to wait before asking again. */
    NOW
    "local rate, lease = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local host, stale, cap = ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "redis.call('HSET', KEYS[4], host, now)\n"
    "redis.call('PEXPIRE', KEYS[4], lease)\n"
    "if not redis.call('ZSCORE', KEYS[3], host) then redis.call('ZADD', KEYS[3], now, host) end\n"
    "redis.call('PEXPIRE', KEYS[3], lease)\n"
    "local paused = redis.call('PTTL', KEYS[2])\n"
    "if paused > 0 then return math.min(paused, cap) end\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "local rank = 0\n"
    "for _, w in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do\n"
    "  if w == host then break end\n"
    "  local seen = tonumber(redis.call('HGET', KEYS[4], w) or 0)\n"
    "  if now - seen > stale then\n"
    "    redis.call('ZREM', KEYS[3], w)\n"
    "    redis.call('HDEL', KEYS[4], w)\n"
    "  else\n"
    "    rank = rank + 1\n"
    "  end\n"
    "end\n"
    "local used = redis.call('ZCARD', KEYS[1])\n"
    "if used + rank < rate then\n"
    "  redis.call('ZADD', KEYS[1], now + lease, ARGV[4])\n"
    "  redis.call('PEXPIRE', KEYS[1], lease)\n"
    "  redis.call('ZREM', KEYS[3], host)\n"
    "  return 0\n"
    "end\n"
    "local i = used + rank - rate\n"
    "local turn = redis.call('ZRANGE', KEYS[1], i, i, 'WITHSCORES')\n"
    "if turn[2] then return math.max(1, math.min(tonumber(turn[2]) - now, cap)) end\n"
    "return cap\n",
    /* RELEASE: KEYS permits; ARGV window member. The request was answered now. */
    NOW
    "redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])\n"
    "return 0\n",
    /* CARRY: KEYS permits; ARGV lease, then pairs of (ms it still counts, member): permits a
     * host took while Redis was away, or that Redis lost in a restart. */
    NOW
    "for i = 2, #ARGV - 1, 2 do\n"
    "  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[i]), ARGV[i + 1])\n"
    "end\n"
    "if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
    "end\n"
    "return 0\n",
    /* PAUSE: KEYS pause; ARGV ms. Every host waits that long (a longer pause stays). */
    "if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then\n"
    "  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])\n"
    "end\n"
    "return 0\n",
    /* TOKEN_GET: KEYS token lock; ARGV host refused lease. {1, token, expires_at, renew_at}: the
     * account's token (not the one this host saw refused); {2}: this host holds the lock now
     * and logs in; {0}: another host is logging in, ask again soon. */
    "local t = redis.call('HMGET', KEYS[1], 'token', 'expires_at', 'renew_at')\n"
    "if t[1] and t[1] ~= ARGV[2] then return {1, t[1], t[2], t[3]} end\n"
    "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[3]) then return {2} end\n"
    "if redis.call('GET', KEYS[2]) == ARGV[1] then return {2} end\n"
    "return {0}\n",
    /* TOKEN_PUT: KEYS token lock; ARGV host token expires_at renew_at ttl. Keeps the new token
     * until it is due for renewal, and lets go of the lock if this host holds it. */
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], 'token', ARGV[2], 'expires_at', ARGV[3], 'renew_at', ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
    "if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end\n"
    "return 0\n",
    /* TOKEN_UNLOCK: KEYS lock; ARGV host. The login failed: another host may try. */
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "return 0\n",
    /* DEDUPE_CLAIM: KEYS content; ARGV mine window. {1}: this host sends it (claimed now, or
     * already); {2, where}: delivered by another host within the window; {3, who}: another
     * host is sending it now. */
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, ''} end\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v or v == ARGV[1] then\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "  return {1, ''}\n"
    "end\n"
    "if string.sub(v, 1, 5) == 'done:' then return {2, string.sub(v, 6)} end\n"
    "return {3, v}\n",
    /* DEDUPE_DONE: KEYS content; ARGV value window. Delivered: duplicates for a window. */
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "return 0\n",
    /* DEDUPE_DROP: KEYS content; ARGV mine. Not delivered after all: the others may send it. */
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "return 0\n",
    /* BEAT: KEYS host hosts; ARGV summary ttl name. The host's summary for TTL ms, and when it
     * was last seen (hosts: a sorted set by Redis time, for `status --cluster`; a host gone a
     * week is forgotten). */
    NOW
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "redis.call('ZADD', KEYS[2], now, ARGV[3])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 7 * 86400000)\n"
    "return 0\n",
};
/* clang-format on */
