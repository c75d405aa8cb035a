package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mgw-gateway/mgw/configs"
)

// Credentials identify a gateway to its org.
type Credentials struct {
	Org, Env, Key, Secret string
}

// Check reports which credentials are missing, naming their flags.
func (c Credentials) Check() error {
	var missing []string
	for _, f := range []struct{ v, name string }{
		{c.Org, "--org/EDGEMICRO_ORG"}, {c.Env, "--env/EDGEMICRO_ENV"},
		{c.Key, "--key/EDGEMICRO_KEY"}, {c.Secret, "--secret/EDGEMICRO_SECRET"},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("edge mode needs %s", strings.Join(missing, ", "))
	}
	return nil
}

// DefaultMaxDownloadMB bounds what is read from any Edge answer, in MiB,
// unless edge_config.max_download_mb says otherwise.
const DefaultMaxDownloadMB = 32

// Client calls one org's Edge endpoints.
type Client struct {
	cfg     configs.EdgeConfig
	cred    Credentials
	http    *http.Client
	maxBody int64 // bytes

	mu sync.Mutex
	// tagged is the last answer of each URL that came with an ETag, sent
	// back as If-None-Match: a 304 then costs no download.
	tagged map[string]taggedBody
}

// taggedBody is an answer and its ETag.
type taggedBody struct {
	etag string
	body []byte
}

// ErrTooLarge is an Edge answer larger than edge_config.max_download_mb.
var ErrTooLarge = errors.New("answer too large")

// NewClient builds a client for cfg, with the TLS settings of
// [edge_config.tls].
func NewClient(cfg configs.EdgeConfig, cred Credentials) (*Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tc, err := tlsConfig(cfg.TLS)
	if err != nil {
		return nil, err
	}
	tr.TLSClientConfig = tc
	tr.MaxIdleConnsPerHost = 16
	mb := cfg.MaxDownloadMB
	if mb <= 0 {
		mb = DefaultMaxDownloadMB
	}
	return &Client{cfg: cfg, cred: cred, http: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		maxBody: int64(mb) << 20, tagged: map[string]taggedBody{}}, nil
}

func tlsConfig(t configs.EdgeTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, for tests
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("edge_config.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("edge_config.tls.ca: no certificate in %s", t.CA)
		}
		tc.RootCAs = pool
	}
	if t.Cert != "" || t.Key != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("edge_config.tls cert/key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// StatusError is an Edge answer other than 200.
type StatusError struct {
	URL    string
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: %d %s", e.URL, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// get fetches url, with Basic key:secret when auth is set. When the last
// answer of url had an ETag it asks with If-None-Match, and a 304 gives
// that answer again.
func (c *Client) get(ctx context.Context, url string, auth bool) ([]byte, error) {
	c.mu.Lock()
	last, ok := c.tagged[url]
	c.mu.Unlock()
	var hdr http.Header
	if ok {
		hdr = http.Header{"If-None-Match": {last.etag}}
	}
	b, etag, err := c.fetch(ctx, http.MethodGet, url, auth, hdr, nil)
	var se *StatusError
	if ok && errors.As(err, &se) && se.Status == http.StatusNotModified {
		return last.body, nil
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if etag != "" {
		c.tagged[url] = taggedBody{etag, b}
	} else {
		delete(c.tagged, url)
	}
	c.mu.Unlock()
	return b, nil
}

func (c *Client) do(ctx context.Context, method, url string, auth bool, hdr http.Header, body []byte) ([]byte, error) {
	b, _, err := c.fetch(ctx, method, url, auth, hdr, body)
	return b, err
}

// fetch calls url and returns a 200's body and ETag. An answer larger than
// maxBody is an error that names the setting.
func (c *Client) fetch(ctx context.Context, method, url string, auth bool, hdr http.Header, body []byte) ([]byte, string, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, "", fmt.Errorf("edge request: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if auth {
		req.SetBasicAuth(c.cred.Key, c.cred.Secret)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("calling edge: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", &StatusError{URL: url, Status: resp.StatusCode, Body: short(b)}
	}
	if int64(len(b)) > c.maxBody {
		return nil, "", fmt.Errorf("%s: %w: more than %d MiB, the limit edge_config.max_download_mb sets; raise it", url, ErrTooLarge, c.maxBody>>20)
	}
	return b, resp.Header.Get("ETag"), nil
}

func short(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Download is everything one poll fetched, as Edge sent it.
type Download struct {
	Bootstrap json.RawMessage `json:"bootstrap"`
	Products  json.RawMessage `json:"products"`
	PublicKey string          `json:"jwt_public_key"`
	JWKS      json.RawMessage `json:"jwk_public_keys,omitempty"`
	Time      time.Time       `json:"downloaded_at"`
	// Unchanged: every answer is, byte for byte, the one of the download
	// given to Client.Download as last; nothing was parsed.
	Unchanged bool `json:"-"`
}

// sameBytes reports whether d and e hold the same answers byte for byte.
func (d *Download) sameBytes(e *Download) bool {
	return bytes.Equal(d.Bootstrap, e.Bootstrap) && bytes.Equal(d.Products, e.Products) &&
		d.PublicKey == e.PublicKey && bytes.Equal(d.JWKS, e.JWKS)
}

// Download fetches the bootstrap, products and keys. Any failure fails
// the whole download, so a snapshot is never built from half of one. When
// every answer is byte for byte last's (nil for none), the download is
// marked Unchanged and not parsed again: a poll that changes nothing
// costs the bytes it reads (none for an answer that came back 304).
func (c *Client) Download(ctx context.Context, last *Download) (*Download, error) {
	d := &Download{Time: time.Now().UTC()}
	b, err := c.get(ctx, c.cfg.Bootstrap, true)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	d.Bootstrap = b
	if b, err = c.get(ctx, c.cfg.Products, true); err != nil {
		return nil, fmt.Errorf("products: %w", err)
	}
	d.Products = b
	if b, err = c.get(ctx, c.cfg.JWTPublicKey, false); err != nil {
		return nil, fmt.Errorf("jwt_public_key: %w", err)
	}
	d.PublicKey = string(b)
	if c.cfg.JWKPublicKeys != "" {
		if b, err = c.get(ctx, c.cfg.JWKPublicKeys, false); err != nil {
			return nil, fmt.Errorf("jwk_public_keys: %w", err)
		}
		d.JWKS = b
	}
	if last != nil && d.sameBytes(last) {
		d.Unchanged = true
		return d, nil
	}
	if _, err := d.parse(); err != nil {
		return nil, err
	}
	return d, nil
}

// ErrKeyRejected wraps Edge's refusal of an API key.
var ErrKeyRejected = errors.New("api key rejected")

// VerifyAPIKey asks Edge's verifyApiKey for a token for key. A refusal is
// a *StatusError wrapped with ErrKeyRejected; anything else is a failure
// to reach Edge.
func (c *Client) VerifyAPIKey(ctx context.Context, url, key string) (string, error) {
	body, _ := json.Marshal(map[string]string{"apiKey": key})
	hdr := http.Header{"X-Dna-Api-Key": {key}, "Content-Type": {"application/json"}}
	b, err := c.do(ctx, http.MethodPost, url, true, hdr, body)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			return "", fmt.Errorf("%w: %w", ErrKeyRejected, se)
		}
		return "", err
	}
	return verifyAPIKeyToken(b)
}

// verifyAPIKeyToken reads the token of verifyApiKey's answer b.
func verifyAPIKeyToken(b []byte) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Token == "" {
		return "", errors.New("verifyApiKey answered without a token")
	}
	return out.Token, nil
}

// ServiceURL is the URL of another edgemicro service of the org, which
// lives beside bootstrap: the bootstrap URL with its last "bootstrap"
// replaced by kind (axpublisher, quotas …), as edgemicro derives them.
func ServiceURL(bootstrap, kind string) string {
	i := strings.LastIndex(bootstrap, "bootstrap")
	if i < 0 {
		return ""
	}
	return bootstrap[:i] + kind + bootstrap[i+len("bootstrap"):]
}

// VerifyAPIKeyURL is where API keys are verified: the configured URL, or
// the jwt_public_key URL with its last segment replaced by verifyApiKey
// (both live on the edgemicro-auth proxy).
func VerifyAPIKeyURL(cfg *configs.Config) string {
	for _, a := range []*configs.Auth{cfg.OAuth, cfg.APIKeys} {
		if a != nil && a.VerifyAPIKeyURL != "" {
			return a.VerifyAPIKeyURL
		}
	}
	if cfg.EdgeConfig == nil {
		return ""
	}
	u := cfg.EdgeConfig.JWTPublicKey
	if i := strings.LastIndexByte(u, '/'); i >= 0 {
		return u[:i+1] + "verifyApiKey"
	}
	return ""
}
