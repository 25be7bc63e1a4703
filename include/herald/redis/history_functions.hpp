// The Redis side of per-uid history for the redis_cluster policy: a Redis 7 function library
// that assigns offsets, appends, trims and publishes in one atomic step (one round trip per
// message), and reads a stream for a resume. Nodes load it (FUNCTION LOAD REPLACE) on every
// publisher connection; any other program may call it too:
//
//   redis-cli FCALL herald_push_1 0 <prefix> <uid> <message>
//
// Keys, per uid (both expire: a uid that went away costs nothing for ever):
//   <prefix>:history:<uid>      hash: e = epoch, o = offset of the last message, and the
//                               limits the nodes use (m = messages, a = max age ms, t =
//                               position TTL ms), so that a push from outside keeps them;
//                               expires position_ttl after its last message or read
//   <prefix>:history-log:<uid>  list of the last m messages, each "<offset> <ms> <t|b><body>"
//                               (ms: Redis's clock when it was pushed); expires max_age after
//                               the last message
// The epoch is made when the hash is missing (first message or login, after its TTL, or after
// Redis lost its data, e.g. restarted without persistence): 16 hex digits of SHA-1 over
// Redis's clock and the key, so a stream that comes back has another epoch and no client is
// told it recovered what was lost.
//
// herald_push_1 0 <prefix> <uid> <message> [<kind t|b> <origin> <m> <a> <t>]
//   -> {epoch, offset, receivers}; PUBLISHes on <prefix>:uid:<uid> the recorded envelope
//   0x1E <origin> 0x1E h <epoch> 0x1E <offset> 0x1E <kind> <message> (redis/envelope.hpp).
//   Without the optional arguments: kind t, origin "fcall", the stream's limits (or 100
//   messages, 300000 ms, 86400000 ms for a new stream).
// herald_read_1 0 <prefix> <uid> <mode> <epoch> <offset> <m> <a> <t>
//   mode "fresh": {epoch, top, 0}. mode "resume": {epoch, top, 1, entries after <offset>...}
//   when the stream still holds every one of them (recovered), else {epoch, top, 2}.
//
// (Keys are built inside from <prefix> and <uid>, as Redis allows outside Redis Cluster; the
// policy targets one Redis, like its pub/sub.)
#ifndef HERALD_REDIS_HISTORY_FUNCTIONS_HPP
#define HERALD_REDIS_HISTORY_FUNCTIONS_HPP
#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>

namespace herald::redis {

inline constexpr std::string_view history_library = R"lua(#!lua name=herald_history_1
local function limits(meta, args, i)
  local m, a, t = tonumber(args[i]), tonumber(args[i + 1]), tonumber(args[i + 2])
  if not m then
    local s = redis.call('HMGET', meta, 'm', 'a', 't')
    m, a, t = tonumber(s[1]) or 100, tonumber(s[2]) or 300000, tonumber(s[3]) or 86400000
  end
  return m, a, t
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The stream's epoch, made (with offset 0, and no log) when the hash is missing.
local function stream(meta, log, m, a, t)
  local e = redis.call('HGET', meta, 'e')
  if not e then
    local c = redis.call('TIME')
    e = string.sub(redis.sha1hex(c[1] .. '.' .. c[2] .. '.' .. meta), 1, 16)
    redis.call('HSET', meta, 'e', e, 'o', 0)
    redis.call('DEL', log)
  end
  redis.call('HSET', meta, 'm', m, 'a', a, 't', t)
  redis.call('PEXPIRE', meta, t)
  return e
end

local function keys_of(prefix, uid)
  return prefix .. ':history:' .. uid, prefix .. ':history-log:' .. uid, prefix .. ':uid:' .. uid
end

redis.register_function('herald_push_1', function(_, args)
  local meta, log, channel = keys_of(args[1], args[2])
  local body, kind, origin = args[3], args[4] or 't', args[5] or 'fcall'
  if kind ~= 't' and kind ~= 'b' then return redis.error_reply('herald_push_1: kind must be t or b') end
  local m, a, t = limits(meta, args, 6)
  local e = stream(meta, log, m, a, t)
  local o = redis.call('HINCRBY', meta, 'o', 1)
  redis.call('RPUSH', log, o .. ' ' .. now_ms() .. ' ' .. kind .. body)
  redis.call('LTRIM', log, -m, -1)
  redis.call('PEXPIRE', log, a)
  local n = redis.call('PUBLISH', channel, '\30' .. origin .. '\30h' .. e .. '\30' .. o .. '\30' .. kind .. body)
  return {e, o, n}
end)

redis.register_function('herald_read_1', function(_, args)
  local meta, log = keys_of(args[1], args[2])
  local mode, want_e, want_o = args[3], args[4], tonumber(args[5])
  local m, a, t = limits(meta, args, 6)
  local e = stream(meta, log, m, a, t)
  local top = tonumber(redis.call('HGET', meta, 'o'))
  if mode ~= 'resume' then return {e, top, 0} end
  if want_e ~= e or not want_o or want_o > top then return {e, top, 2} end
  if want_o == top then return {e, top, 1} end
  local first = top - redis.call('LLEN', log) + 1
  if want_o + 1 < first then return {e, top, 2} end
  local entries = redis.call('LRANGE', log, want_o + 1 - first, -1)
  local s1 = string.find(entries[1], ' ', 1, true)
  local s2 = string.find(entries[1], ' ', s1 + 1, true)
  if now_ms() - tonumber(string.sub(entries[1], s1 + 1, s2 - 1)) >= a then return {e, top, 2} end
  local out = {e, top, 1}
  for i = 1, #entries do out[3 + i] = entries[i] end
  return out
end)
)lua";

// One entry of <prefix>:history-log:<uid>: "<offset> <ms> <t|b><body>".
struct history_entry {
  std::uint64_t offset = 0;
  bool binary = false;
  std::string_view body;
};

inline std::optional<history_entry> parse_history_entry(std::string_view s) noexcept {
  history_entry e;
  const auto sp1 = s.find(' ');
  if (sp1 == std::string_view::npos) return std::nullopt;
  const auto r = std::from_chars(s.data(), s.data() + sp1, e.offset);
  if (r.ec != std::errc{} || r.ptr != s.data() + sp1 || e.offset == 0) return std::nullopt;
  const auto sp2 = s.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 + 1 >= s.size()) return std::nullopt;
  if (s[sp2 + 1] != 't' && s[sp2 + 1] != 'b') return std::nullopt;
  e.binary = s[sp2 + 1] == 'b';
  e.body = s.substr(sp2 + 2);
  return e;
}

}  // namespace herald::redis

#endif  // HERALD_REDIS_HISTORY_FUNCTIONS_HPP
