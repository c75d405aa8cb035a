package master

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/configs/edge"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/plugins/oauth"
)

// Key pair file names in the config dir, as `mgw init` writes them.
const (
	PrivateKeyFile = "jwt-private.pem"
	PublicKeyFile  = "jwt-public.pem"
)

// downloadTimeout bounds one download from Edge.
const downloadTimeout = 20 * time.Second

// edgeState is what the master knows of Edge: the client, the last good
// download and the poll in flight. It is owned by the select loop, except
// keyTarget, which key lookups read from their own goroutines.
type edgeState struct {
	client    *edge.Client
	clientCfg configs.EdgeConfig
	download  *edge.Download
	lastPoll  *time.Time
	polling   bool
	keys      *edge.KeyCache
	keyCalls  chan struct{} // a slot per verifyApiKey call in flight
	keyTarget atomic.Pointer[keyTarget]
}

type keyTarget struct {
	client *edge.Client
	url    string
}

// pollResult is a finished download, good or not.
type pollResult struct {
	d   *edge.Download
	err error
}

func (m *Master) credentials() edge.Credentials {
	o := m.opts
	return edge.Credentials{Org: o.Org, Env: o.Env, Key: o.Key, Secret: o.Secret}
}

func (m *Master) cachePath() string {
	return edge.CachePath(m.opts.ConfigDir, m.opts.Org, m.opts.Env)
}

// mergeEdge fills an Edge-mode snapshot from the last download, making the
// first one when there is none: from Edge, or from the cache file when
// Edge cannot be reached.
func (m *Master) mergeEdge(snap *configs.Snapshot) error {
	if err := m.credentials().Check(); err != nil {
		return err
	}
	// One client (and connection pool) while [edge_config] stays the same.
	c := m.edge.client
	if c == nil || m.edge.clientCfg != *snap.Config.EdgeConfig {
		var err error
		if c, err = edge.NewClient(*snap.Config.EdgeConfig, m.credentials()); err != nil {
			return err
		}
		m.edge.client, m.edge.clientCfg = c, *snap.Config.EdgeConfig
	}
	m.edge.keyTarget.Store(&keyTarget{client: c, url: edge.VerifyAPIKeyURL(&snap.Config)})
	if m.edge.download == nil {
		ctx, cancel := context.WithTimeout(context.Background(), downloadTimeout)
		d, err := c.Download(ctx, nil)
		cancel()
		if err == nil {
			now := time.Now()
			m.edge.lastPoll = &now // the last successful poll
			m.saveCache(d)
		} else {
			cached, cerr := edge.ReadCache(m.cachePath())
			if cerr != nil {
				if errors.Is(cerr, os.ErrNotExist) {
					return fmt.Errorf("cannot reach Edge (%w) and there is no cache file %s to start from", err, m.cachePath())
				}
				return fmt.Errorf("cannot reach Edge (%w) and the cache cannot be used: %w", err, cerr)
			}
			msg := err.Error()
			m.lastError = &msg
			m.log.Warn().Err(err).Str(logkey.Reason, downloadFailure(err)).Str(logkey.Cache, m.cachePath()).
				Time(logkey.DownloadedAt, cached.Time).Msg("no good download from Edge: starting from the cache")
			d = cached
		}
		m.edge.download = d
	}
	return edge.Merge(snap, m.edge.download, m.log)
}

// downloadFailure says what went wrong with a download in a few words:
// a network failure is not the only one.
func downloadFailure(err error) string {
	switch {
	case errors.Is(err, edge.ErrTooLarge):
		return "Edge's answer is too large"
	case errors.Is(err, edge.ErrIncomplete):
		return "Edge's answer is incomplete"
	default:
		return "cannot reach Edge"
	}
}

func (m *Master) saveCache(d *edge.Download) {
	if m.dryRun {
		return // verify writes nothing
	}
	if err := os.MkdirAll(m.opts.ConfigDir, 0o700); err != nil {
		m.log.Warn().Err(err).Msg("cannot write the Edge cache")
		return
	}
	if err := edge.WriteCache(m.cachePath(), d); err != nil {
		m.log.Warn().Err(err).Msg("cannot write the Edge cache")
	}
}

// startPoll downloads from Edge in the background; the result arrives on
// m.polled.
func (m *Master) startPoll() {
	if m.edge.polling || m.edge.client == nil || !m.phase.serving() {
		return
	}
	m.edge.polling = true
	c, last := m.edge.client, m.edge.download
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), downloadTimeout)
		defer cancel()
		d, err := c.Download(ctx, last)
		select {
		case m.polled <- pollResult{d, err}:
		case <-m.done:
		}
	}()
}

// onPoll pushes a changed download to the workers; a failed one (Edge
// unreachable, an error status, an answer that is not Edge's or lacks
// what Edge always sends) keeps the last good config and cache file. A
// download that changes nothing is neither pushed nor written: when its
// bytes are the last ones it was not even parsed.
func (m *Master) onPoll(r pollResult) {
	m.edge.polling = false
	if r.err != nil {
		msg := r.err.Error()
		m.lastError = &msg
		m.log.Warn().Err(r.err).Msg("Edge poll failed; the last good config keeps serving")
		return
	}
	now := time.Now()
	m.edge.lastPoll = &now // the last successful poll
	m.lastError = nil
	if r.d.Unchanged {
		return
	}
	if r.d.Checksum() == m.edge.download.Checksum() {
		// The same content in other bytes (the download came from the
		// cache file, or Edge spaced it anew): keep these bytes so that
		// the next poll compares before parsing.
		m.edge.download = r.d
		return
	}
	m.saveCache(r.d)
	m.edge.download = r.d
	m.reloadFile()
}

// pollInterval is the period of Edge polls, or 0 for none.
func pollInterval(cfg *configs.Config) time.Duration {
	e := cfg.Edgemicro
	if !cfg.EdgeMode() || e.DisableConfigPollInterval || e.ConfigChangePollInterval <= 0 {
		return 0
	}
	return time.Duration(e.ConfigChangePollInterval) * time.Second
}

// askKey answers a worker's KeyAsk from the instance-wide key cache.
func (m *Master) askKey(ask ipc.KeyAsk) ipc.KeyTell {
	t := m.edge.keyTarget.Load()
	if t == nil || t.url == "" {
		return ipc.KeyTell{ID: ask.ID, Error: "API keys cannot be verified: no verify_api_key_url"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tok, err := m.edge.keys.Get(ctx, ask.Key)
	var se *edge.StatusError
	switch {
	case err == nil:
		return ipc.KeyTell{ID: ask.ID, Token: tok}
	case errors.Is(err, edge.ErrKeyRejected) && errors.As(err, &se):
		return ipc.KeyTell{ID: ask.ID, Status: se.Status}
	default:
		return ipc.KeyTell{ID: ask.ID, Error: err.Error()}
	}
}

// maxKeyCalls bounds the verifyApiKey calls in flight, so that a flood of
// unknown keys cannot flood Edge.
const maxKeyCalls = 32

func (m *Master) verifyKey(ctx context.Context, key string) (string, error) {
	select {
	case m.edge.keyCalls <- struct{}{}:
		defer func() { <-m.edge.keyCalls }()
	case <-ctx.Done():
		return "", ctx.Err()
	}
	t := m.edge.keyTarget.Load()
	return t.client.VerifyAPIKey(ctx, t.url, key)
}

// localKeys loads the key pair `mgw init` wrote, for local-mode tokens.
// Without one, local mode serves no auth plugin (which then says so).
func (m *Master) localKeys(snap *configs.Snapshot) error {
	path := filepath.Join(m.opts.ConfigDir, PrivateKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the token signing key: %w", configs.ExplainAccess(err))
	}
	key, err := oauth.ParsePrivateKey(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	snap.Keys = configs.Keys{PublicKeys: []string{pubPEM}, PrivateKey: string(b)}
	return nil
}
