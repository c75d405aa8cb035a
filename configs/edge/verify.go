package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Check is the outcome of one endpoint check of `mgw verify`.
type Check struct {
	Name, URL, Detail string
	Err               error
}

// Verify checks each endpoint a gateway uses, in the order a start uses
// them. verifyKeyURL may be empty.
func (c *Client) Verify(ctx context.Context, verifyKeyURL string) []Check {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out []Check
	get := func(name, url string, auth bool, detail func([]byte) (string, error)) {
		if url == "" {
			return
		}
		ch := Check{Name: name, URL: url}
		b, err := c.get(ctx, url, auth)
		if err == nil && detail != nil {
			ch.Detail, err = detail(b)
		}
		ch.Err = err
		out = append(out, ch)
	}
	count := func(field string) func([]byte) (string, error) {
		return func(b []byte) (string, error) {
			var doc map[string][]json.RawMessage
			if err := json.Unmarshal(b, &doc); err != nil {
				return "", fmt.Errorf("not JSON: %w", err)
			}
			list, ok := doc[field]
			if !ok || list == nil {
				// start refuses such an answer (ErrIncomplete): so must verify
				return "", fmt.Errorf("%w: no %s list", ErrIncomplete, field)
			}
			return fmt.Sprintf("%d %s", len(list), field), nil
		}
	}
	get("bootstrap", c.cfg.Bootstrap, true, count("apiProxies"))
	get("products", c.cfg.Products, true, count("apiProduct"))
	get("jwt_public_key", c.cfg.JWTPublicKey, false, func(b []byte) (string, error) {
		d := Download{Bootstrap: []byte(`{"apiProxies":[]}`), Products: []byte(`{"apiProduct":[]}`), PublicKey: string(b)}
		if _, err := d.parse(); err != nil {
			return "", err
		}
		return "PEM", nil
	})
	get("jwk_public_keys", c.cfg.JWKPublicKeys, false, count("keys"))
	if verifyKeyURL != "" {
		ch := Check{Name: "verifyApiKey", URL: verifyKeyURL}
		// A key that cannot exist: the endpoint must answer, and refuse it.
		_, err := c.VerifyAPIKey(ctx, verifyKeyURL, "mgw-verify-not-a-key")
		var se *StatusError
		switch {
		case errors.As(err, &se) && se.Status == http.StatusUnauthorized && se.Body != "" && json.Valid([]byte(se.Body)) && containsAuthFailure(se.Body):
			ch.Err = fmt.Errorf("key and secret refused: %w", err)
		case errors.Is(err, ErrKeyRejected):
			ch.Detail = "answers; refuses unknown keys"
		case err == nil:
			ch.Err = errors.New("accepted a key that cannot exist")
		default:
			ch.Err = err
		}
		out = append(out, ch)
	}
	return out
}

// containsAuthFailure tells edgemicro-auth's refusal of the gateway's own
// credentials from its refusal of the API key.
func containsAuthFailure(body string) bool {
	var e struct {
		Error string `json:"error"`
	}
	return json.Unmarshal([]byte(body), &e) == nil && e.Error == "unauthorized"
}
