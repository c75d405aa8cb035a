package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mgw-gateway/mgw/configs/edge"
	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/plugins"
)

// keyClient verifies API keys for the worker's auth plugins. In local
// mode it looks the key up among the apps of the serving revision; in
// Edge mode it asks the master, which keeps one cache for the instance,
// and keeps the token itself until it expires so a key costs one IPC
// round trip per worker and token.
type keyClient struct {
	conn *ipc.Conn
	rt   func() *runtime
	now  func() time.Time

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan ipc.KeyTell
	tokens  map[string]cachedToken
}

type cachedToken struct {
	token   string
	expires time.Time
}

// maxCachedKeys bounds the worker's own key cache.
const maxCachedKeys = 10000

func newKeyClient(conn *ipc.Conn, rt func() *runtime) *keyClient {
	return &keyClient{conn: conn, rt: rt, now: time.Now, pending: map[uint64]chan ipc.KeyTell{}, tokens: map[string]cachedToken{}}
}

// VerifyAPIKey implements plugins.KeyVerifier.
func (k *keyClient) VerifyAPIKey(ctx context.Context, key string) (plugins.KeyResult, error) {
	if rt := k.rt(); rt != nil && !rt.snap.Config.EdgeMode() {
		c, ok := rt.apps[key]
		if !ok {
			return plugins.KeyResult{}, plugins.ErrKeyRejected
		}
		return plugins.KeyResult{Claims: c}, nil
	}
	now := k.now()
	k.mu.Lock()
	if t, ok := k.tokens[key]; ok && now.Before(t.expires) {
		k.mu.Unlock()
		return plugins.KeyResult{Token: t.token}, nil
	}
	k.nextID++
	id := k.nextID
	ch := make(chan ipc.KeyTell, 1)
	k.pending[id] = ch
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		delete(k.pending, id)
		k.mu.Unlock()
	}()
	if err := k.conn.Send(ipc.KindKeyAsk, ipc.KeyAsk{ID: id, Key: key}); err != nil {
		return plugins.KeyResult{}, fmt.Errorf("asking the master: %w", err)
	}
	select {
	case t := <-ch:
		switch {
		case t.Token != "":
			k.remember(key, t.Token)
			return plugins.KeyResult{Token: t.Token}, nil
		case t.Status != 0:
			return plugins.KeyResult{}, fmt.Errorf("%w: %d %s", plugins.ErrKeyRejected, t.Status, http.StatusText(t.Status))
		default:
			return plugins.KeyResult{}, errors.New(t.Error)
		}
	case <-ctx.Done():
		return plugins.KeyResult{}, fmt.Errorf("verifying api key: %w", ctx.Err())
	}
}

func (k *keyClient) remember(key, token string) {
	exp := edge.TokenExpiry(token, k.now())
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.tokens) >= maxCachedKeys {
		now := k.now()
		for key, t := range k.tokens {
			if now.After(t.expires) || len(k.tokens) >= maxCachedKeys {
				delete(k.tokens, key)
			}
		}
	}
	k.tokens[key] = cachedToken{token: token, expires: exp}
}

// deliver hands the master's answer to the request waiting for it.
func (k *keyClient) deliver(f ipc.Frame) error {
	var t ipc.KeyTell
	if err := f.Decode(&t); err != nil {
		return err
	}
	k.mu.Lock()
	ch := k.pending[t.ID]
	k.mu.Unlock()
	if ch != nil {
		ch <- t // buffered; the asker may have given up
	}
	return nil
}
