"""Where the buckets and the month's spend live: in this process, or in Redis.

A token bucket holds at most ``capacity`` units and refills at ``rate`` units per second; a
call takes ``cost`` units from each of its buckets at once, or from none (then the answer
is how long until it would fit). A ``force`` take always applies: the correction after a
call by its actual usage (a negative cost gives units back, a positive one may leave the
bucket in debt, which delays the next calls).

``RedisBackend`` does the same in one Lua script per call, so every replica sharing the
Redis sees one bucket with no read-modify-write race; each round trip carries the
``redis_timeout_ms`` deadline (no retries), and any failure is ``BackendUnavailable``. Time is
the caller's wall clock (``genai_audit.clock``) as Unix seconds; a bucket never goes back in
time, so replicas whose clocks differ a little cannot refill it twice.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Backend", "BackendUnavailable", "MemoryBackend", "RedisBackend", "Take"]


class BackendUnavailable(ConnectionError):
    """The shared limiter store did not answer in time (or at all)."""


@dataclass(frozen=True)
class Take:
    key: str
    capacity: float
    rate: float  # units per second
    cost: float


class Backend(Protocol):
    def take(self, takes: Sequence[Take], now: float, force: bool = False) -> float:
        """0.0 when taken; else the seconds until the call would fit (``inf``: never)."""

    def add_spend(self, key: str, usd: float, ttl_s: int) -> float:
        """Add to a spend counter; its new total."""

    def values(self, keys: Sequence[str]) -> list[float | None]:
        """Numbers stored under ``keys`` (spend counters, budget overrides); None if unset."""

    def set_value(self, key: str, value: float) -> None: ...

    def first(self, key: str, ttl_s: int) -> bool:
        """True exactly once per key (until it expires): an alarm raised once."""

    def close(self) -> None: ...


def _wait(level: float, take: Take) -> float:
    if take.cost > take.capacity:
        return math.inf
    return (take.cost - level) / take.rate


class MemoryBackend:
    """Buckets and spend in this process (one replica); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (level, at)
        self._numbers: dict[str, float] = {}
        self._seen: set[str] = set()

    def take(self, takes: Sequence[Take], now: float, force: bool = False) -> float:
        with self._lock:
            levels = []
            wait = 0.0
            for take in takes:
                level, at = self._buckets.get(take.key, (take.capacity, now))
                if now > at:
                    level, at = min(take.capacity, level + (now - at) * take.rate), now
                levels.append((level, at))
                if not force and level < take.cost:
                    wait = max(wait, _wait(level, take))
            if wait > 0:
                return wait
            for take, (level, at) in zip(takes, levels, strict=True):
                self._buckets[take.key] = (min(take.capacity, level - take.cost), at)
            return 0.0

    def add_spend(self, key: str, usd: float, ttl_s: int) -> float:
        with self._lock:
            total = self._numbers[key] = self._numbers.get(key, 0.0) + usd
            return total

    def values(self, keys: Sequence[str]) -> list[float | None]:
        with self._lock:
            return [self._numbers.get(key) for key in keys]

    def set_value(self, key: str, value: float) -> None:
        with self._lock:
            self._numbers[key] = value

    def first(self, key: str, ttl_s: int) -> bool:
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True

    def close(self) -> None:
        return None


# KEYS: the buckets. ARGV: now, force (0/1), then capacity, rate, cost per bucket.
# Returns {1, "0"} when taken, else {0, seconds to wait} (as strings: Lua numbers would be
# truncated to integers on the way back).
_TAKE_LUA = """
local now = tonumber(ARGV[1])
local force = ARGV[2] == '1'
local state = {}
local wait = 0
for i = 1, #KEYS do
  local cap = tonumber(ARGV[i * 3])
  local rate = tonumber(ARGV[i * 3 + 1])
  local cost = tonumber(ARGV[i * 3 + 2])
  local v = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = tonumber(v[1])
  local at = tonumber(v[2])
  if level == nil or at == nil then level = cap; at = now end
  if now > at then level = math.min(cap, level + (now - at) * rate); at = now end
  state[i] = {level, at, cap, rate, cost}
  if not force and level < cost then
    if cost > cap then return {0, 'inf'} end
    local w = (cost - level) / rate
    if w > wait then wait = w end
  end
end
if wait > 0 then return {0, tostring(wait)} end
for i = 1, #KEYS do
  local s = state[i]
  redis.call('HSET', KEYS[i], 'l', tostring(math.min(s[3], s[1] - s[5])), 't', tostring(s[2]))
  redis.call('PEXPIRE', KEYS[i], math.ceil(s[3] / s[4] * 1000) + 60000)
end
return {1, '0'}
"""


class RedisBackend:
    """Buckets and spend in Redis, shared by every replica (``redis`` client)."""

    def __init__(self, url: str, timeout_ms: int, prefix: str = "genai_audit:") -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        seconds = timeout_ms / 1000
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=seconds, socket_connect_timeout=seconds,
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0)
        self._script = self._client.register_script(_TAKE_LUA)
        self._prefix = prefix

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._errors as exc:
            raise BackendUnavailable(type(exc).__name__) from None

    def take(self, takes: Sequence[Take], now: float, force: bool = False) -> float:
        args: list[str] = [repr(now), "1" if force else "0"]
        for take in takes:
            args += [repr(float(take.capacity)), repr(float(take.rate)), repr(float(take.cost))]
        taken, wait = self._call(self._script, keys=[self._prefix + t.key for t in takes],
                                 args=args)
        return 0.0 if int(taken) == 1 else float(wait)

    def add_spend(self, key: str, usd: float, ttl_s: int) -> float:
        pipe = self._client.pipeline(transaction=True)
        pipe.incrbyfloat(self._prefix + key, usd)
        pipe.expire(self._prefix + key, ttl_s)
        total, _ = self._call(pipe.execute)
        return float(total)

    def values(self, keys: Sequence[str]) -> list[float | None]:
        found = self._call(self._client.mget, [self._prefix + key for key in keys])
        return [None if value is None else float(value) for value in found]

    def set_value(self, key: str, value: float) -> None:
        self._call(self._client.set, self._prefix + key, repr(value))

    def first(self, key: str, ttl_s: int) -> bool:
        return bool(self._call(self._client.set, self._prefix + key, b"1", nx=True, ex=ttl_s))

    def close(self) -> None:
        self._client.close()
