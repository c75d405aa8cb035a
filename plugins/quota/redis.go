package quota

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mgw-gateway/mgw/plugins/zone"
)

// takeScript counts one request in a flexi window kept in Redis, atomically
// on the server: a window opens with its first request and expires after
// ARGV[2] ms; a request past ARGV[1] is not counted. It returns the count,
// the window's milliseconds left and 1 when the request is admitted.
var takeScript = redis.NewScript(`
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
  return {used, ttl, 0}
end
used = redis.call('INCR', KEYS[1])
if used == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {used, redis.call('PTTL', KEYS[1]), 1}
`)

// redisClients holds one client per URL for the process: configuration
// revisions come and go, the connection pools stay.
var redisClients sync.Map

func redisClient(url string) (*redis.Client, error) {
	if c, ok := redisClients.Load(url); ok {
		return c.(*redis.Client), nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("[quotas] redis_url: %w", err)
	}
	// On the request path: fail fast, and let failOpen decide.
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = time.Second, time.Second, time.Second
	opts.MaxRetries = 1
	c, _ := redisClients.LoadOrStore(url, redis.NewClient(opts))
	return c.(*redis.Client), nil
}

// redisBackend counts in Redis, exact across every instance that shares it.
type redisBackend struct {
	client *redis.Client
	prefix string
}

func (b *redisBackend) take(ctx context.Context, id string, l *limit, now time.Time) (zone.Window, error) {
	window := l.end(now).Sub(now)
	res, err := takeScript.Run(ctx, b.client, []string{b.prefix + id}, l.allow, window.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 3 {
		return zone.Window{}, fmt.Errorf("redis quota: %w", err)
	}
	return zone.Window{Used: uint32(res[0]), Allowed: res[2] == 1, End: now.Add(time.Duration(res[1]) * time.Millisecond)}, nil
}
