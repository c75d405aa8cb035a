package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mgw-gateway/mgw/configs/edge"
	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/plugins"
)

// keyClient verifies API keys for the worker's auth plugins. In local
// mode it looks the key up among the apps of the serving revision. In
// Edge mode it asks the master, which keeps one cache for the instance,
// through an edge.KeyCache of its own: a key costs one IPC round trip per
// worker and token, however many requests carry it at once.
type keyClient struct {
	conn  *ipc.Conn
	rt    func() *runtime
	cache *edge.KeyCache

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan ipc.KeyTell
}

// maxCachedKeys bounds the worker's own key cache.
const maxCachedKeys = 10000

func newKeyClient(conn *ipc.Conn, rt func() *runtime) *keyClient {
	k := &keyClient{conn: conn, rt: rt, pending: map[uint64]chan ipc.KeyTell{}}
	k.cache = &edge.KeyCache{Verify: k.ask, Max: maxCachedKeys}
	return k
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
	tok, err := k.cache.Get(ctx, key)
	if errors.Is(err, edge.ErrKeyRejected) {
		return plugins.KeyResult{}, fmt.Errorf("%w: %w", plugins.ErrKeyRejected, err)
	}
	if err != nil {
		return plugins.KeyResult{}, err
	}
	return plugins.KeyResult{Token: tok}, nil
}

// ask puts the question to the master and waits for its answer.
func (k *keyClient) ask(ctx context.Context, key string) (string, error) {
	k.mu.Lock()
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
	// The question goes from a goroutine of its own, so that a master
	// that does not read (its socket buffer full) holds this request no
	// longer than its context; requests with a cached key never get here.
	sent := make(chan error, 1)
	go func() { sent <- k.conn.Send(ipc.KindKeyAsk, ipc.KeyAsk{ID: id, Key: key}) }()
	select {
	case err := <-sent:
		if err != nil {
			return "", fmt.Errorf("asking the master: %w", err)
		}
	case <-ctx.Done():
		return "", fmt.Errorf("asking the master: %w", ctx.Err())
	}
	select {
	case t := <-ch:
		switch {
		case t.Token != "":
			return t.Token, nil
		case t.Status != 0:
			return "", fmt.Errorf("%w: %w", edge.ErrKeyRejected, &edge.StatusError{URL: "verifyApiKey", Status: t.Status})
		default:
			return "", errors.New(t.Error)
		}
	case <-ctx.Done():
		return "", fmt.Errorf("verifying api key: %w", ctx.Err())
	}
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
