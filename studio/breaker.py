"""A circuit breaker per remote host, its state in Redis so that every worker process shares it.

Closed: calls go through and consecutive failures (no connection, no answer in time) are counted; any answer resets
the count. After `threshold` failures in a row the breaker opens: callers are told to wait out the cool-down instead
of calling. Once it is over, exactly one caller (across all processes) is let through as the probe; the others wait
for it. The probe's answer closes the breaker, its failure opens it for another cool-down. A probe that never reports
(its process died) holds its place only for `probe_seconds`.

pybreaker's Redis storage shares the state too, but in its half-open state lets every process through at once, and
its transitions are separate commands; here each step is one Lua script, so exactly one probe runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis import Redis

logger = logging.getLogger(__name__)

_KEY = "studio:breaker:{}"
# How long a host's failure count is remembered without a new failure.
_MEMORY_SECONDS = 86400

# Return "" to go ahead (closed, or the probe after the cool-down), else the seconds to wait.
# KEYS: state hash, probe key. ARGV: now, probe_seconds.
_ADMIT = """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until == 0 then
    return ''
end
local now = tonumber(ARGV[1])
if now < open_until then
    return tostring(open_until - now)
end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', math.floor(tonumber(ARGV[2]) * 1000)) then
    return ''
end
return tostring(math.max(redis.call('PTTL', KEYS[2]), 0) / 1000)
"""

# Count a failure; open (again) at the threshold, or at once after a failed probe. Returns 1 when it opened.
# KEYS: state hash, probe key. ARGV: now, threshold, cooldown_seconds, memory_seconds.
_FAIL = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local was_open = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') > 0
redis.call('EXPIRE', KEYS[1], ARGV[4])
if failures >= tonumber(ARGV[2]) or was_open then
    redis.call('HSET', KEYS[1], 'open_until', tostring(tonumber(ARGV[1]) + tonumber(ARGV[3])))
    redis.call('DEL', KEYS[2])
    return 1
end
return 0
"""


@dataclass(frozen=True)
class Breaker:
    """The breaker of one remote host."""

    connection: Redis
    host: str
    threshold: int
    cooldown_seconds: float
    probe_seconds: float

    @property
    def _keys(self) -> list[str]:
        key = _KEY.format(self.host)
        return [key, key + ":probe"]

    def admit(self) -> float | None:
        """Return None when a call may go ahead now, else the seconds to wait before asking again."""
        answer = self.connection.eval(_ADMIT, 2, *self._keys, time.time(), self.probe_seconds)
        return float(answer) if answer else None

    def failed(self) -> bool:
        """Count a call that got no answer; return True when the breaker opened (again)."""
        opened = bool(self.connection.eval(_FAIL, 2, *self._keys, time.time(), max(self.threshold, 1),
                                           self.cooldown_seconds, _MEMORY_SECONDS))
        if opened:
            logger.warning("%s: no answer from the last %s calls; calls wait %s s, then one probes it", self.host,
                           self.threshold, self.cooldown_seconds)
        return opened

    def answered(self) -> None:
        """Record a call that got an answer: the breaker closes and the count starts again."""
        key, probe = self._keys
        was_open = self.connection.hexists(key, "open_until")
        self.connection.delete(key, probe)
        if was_open:
            logger.info("%s: answered the probe; calls go through again", self.host)

    def release(self) -> None:
        """Give up the probe's place without a verdict (no call was made): the next caller probes."""
        self.connection.delete(self._keys[1])
