package edge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"
)

// KeyCache answers "which token does this API key get?" for a whole
// instance. Concurrent asks for one key share a single call to Edge; a
// token is kept until its exp, a refusal for RejectTTL, and a failure to
// reach Edge not at all.
type KeyCache struct {
	// Verify calls Edge; (*Client).VerifyAPIKey bound to a URL is one.
	Verify func(ctx context.Context, key string) (string, error)
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// RejectTTL is how long a refused key stays refused. Defaults to 10s.
	RejectTTL time.Duration
	// Max bounds the entries kept. Defaults to 100000.
	Max int

	mu sync.Mutex
	m  map[string]*keyEntry
}

type keyEntry struct {
	done    chan struct{}
	token   string
	err     error
	expires time.Time
}

// Get returns key's token, or the error that refused it.
func (k *KeyCache) Get(ctx context.Context, key string) (string, error) {
	now := k.now()
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyEntry{}
	}
	e, ok := k.m[key]
	if ok {
		select {
		case <-e.done:
			if now.After(e.expires) {
				ok = false
			}
		default: // a call is in flight: wait for it below
		}
	}
	if !ok {
		k.evict(now)
		e = &keyEntry{done: make(chan struct{})}
		k.m[key] = e
		k.mu.Unlock()
		k.fill(ctx, key, e)
	} else {
		k.mu.Unlock()
	}
	select {
	case <-e.done:
		return e.token, e.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (k *KeyCache) fill(ctx context.Context, key string, e *keyEntry) {
	defer close(e.done)
	e.token, e.err = k.Verify(ctx, key)
	now := k.now()
	switch {
	case e.err == nil:
		e.expires = TokenExpiry(e.token, now)
	case errors.Is(e.err, ErrKeyRejected):
		ttl := k.RejectTTL
		if ttl <= 0 {
			ttl = 10 * time.Second
		}
		e.expires = now.Add(ttl)
	default:
		e.expires = now // not cached: the next ask tries Edge again
	}
}

// evict drops expired entries when the cache is full, then arbitrary
// ones. Called with mu held.
func (k *KeyCache) evict(now time.Time) {
	limit := k.Max
	if limit <= 0 {
		limit = 100000
	}
	if len(k.m) < limit {
		return
	}
	for key, e := range k.m {
		select {
		case <-e.done:
			if now.After(e.expires) || len(k.m) >= limit {
				delete(k.m, key)
			}
		default:
		}
	}
}

func (k *KeyCache) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// TokenExpiry reads a JWT's exp without verifying it (the worker verifies
// the token itself); a token without one lasts 30 minutes, as in edgemicro.
func TokenExpiry(token string, now time.Time) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c struct {
				Exp float64 `json:"exp"`
			}
			if json.Unmarshal(b, &c) == nil && c.Exp > 0 {
				return time.Unix(int64(c.Exp), 0)
			}
		}
	}
	return now.Add(30 * time.Minute)
}
