package worker

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/configs"
)

// FuzzTokenRequest throws hostile requests at the token endpoint: it
// never panics, answers only 200, 400 or 401, and issues a token only to
// the request that carries the one app's client id and secret.
func FuzzTokenRequest(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	const id, secret = "the-client-id", "the-secret"
	is := &issuer{key: key, apps: map[string]*configs.App{id: {Name: "app", Key: id, Secret: secret}},
		now: func() time.Time { return time.Unix(1_700_000_000, 0) }}
	f.Add("application/json", `{"client_id":"the-client-id","client_secret":"the-secret","grant_type":"client_credentials"}`, "")
	f.Add("application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=the-client-id&client_secret=the-secret", "")
	f.Add("application/x-www-form-urlencoded", "grant_type=client_credentials", "Basic dGhlLWNsaWVudC1pZDp0aGUtc2VjcmV0")
	f.Add("application/json; charset=utf-8", `{"grant_type":"client_credentials","client_id":"the-client-id","client_secret":"wrong"}`, "")
	f.Add("text/plain", "%zz&&==;", "Basic !!!")
	f.Fuzz(func(t *testing.T, contentType, body, authz string) {
		r := httptest.NewRequest(http.MethodPost, tokenPath, strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		w := httptest.NewRecorder()
		if !is.serve(w, r) {
			t.Fatal("the token path was not served")
		}
		switch w.Code {
		case http.StatusBadRequest, http.StatusUnauthorized:
			return
		case http.StatusOK:
		default:
			t.Fatalf("status %d", w.Code)
		}
		// The secret must be in the request in one of the accepted forms.
		_, basicSecret, _ := r.BasicAuth()
		var asJSON struct {
			Secret string `json:"client_secret"`
		}
		_ = json.Unmarshal([]byte(body), &asJSON)
		form, _ := url.ParseQuery(body)
		if basicSecret != secret && asJSON.Secret != secret && form.Get("client_secret") != secret {
			t.Fatalf("a token for a request without the secret: %q, %q", body, authz)
		}
		var out struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || strings.Count(out.Token, ".") != 2 {
			t.Fatalf("200 without a token: %q", w.Body.Bytes())
		}
	})
}
