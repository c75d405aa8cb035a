package edge

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
)

// TestIncompleteAnswersAreFailures: an answer without the list Edge
// always sends is a failed download; empty lists are an org with nothing
// deployed.
func TestIncompleteAnswersAreFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, boot, products string
		wantErr              bool
	}{
		{"empty bootstrap object", `{}`, `{"apiProduct":[]}`, true},
		{"empty products object", `{"apiProxies":[]}`, `{}`, true},
		{"null lists", `{"apiProxies":null}`, `{"apiProduct":[]}`, true},
		{"nothing deployed", `{"apiProxies":[]}`, `{"apiProduct":[]}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			err := Merge(edgeSnap(t), download(tc.boot, tc.products), zerolog.Nop())
			if tc.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrIncomplete)) {
				t.Fatalf("err = %v, want an ErrIncomplete: %t", err, tc.wantErr)
			}
		})
	}
}

// fakeOrg serves the three Edge answers, with an ETag when etag is set,
// and counts the 200s it sent.
type fakeOrg struct {
	mu         sync.Mutex
	boot, prod string
	etag       bool
	full       int // answers with a body
	notMod     int // 304s
}

func (f *fakeOrg) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body := map[string]string{"/b": f.boot, "/p": f.prod, "/k": pemKey}[r.URL.Path]
	if f.etag {
		tag := fmt.Sprintf(`"%x"`, sha256.Sum256([]byte(body)))
		if r.Header.Get("If-None-Match") == tag {
			f.notMod++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", tag)
	}
	f.full++
	_, _ = w.Write([]byte(body))
}

func orgClient(t *testing.T, f *fakeOrg, maxMB int) *Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := NewClient(configs.EdgeConfig{Bootstrap: srv.URL + "/b", Products: srv.URL + "/p", JWTPublicKey: srv.URL + "/k", MaxDownloadMB: maxMB}, Credentials{"o", "e", "k", "s"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUnchangedDownloadIsNotParsed: the same bytes again mark the
// download Unchanged (the bytes are not even valid: parsing them would
// fail), an ETag turns the second download into 304s, and a change is a
// full download.
func TestUnchangedDownloadIsNotParsed(t *testing.T) {
	t.Parallel()
	for _, etag := range []bool{false, true} {
		f := &fakeOrg{boot: `{"apiProxies":[]}`, prod: `{"apiProduct":[]}`, etag: etag}
		c := orgClient(t, f, 0)
		ctx := context.Background()
		first, err := c.Download(ctx, nil)
		if err != nil || first.Unchanged {
			t.Fatalf("first download: %v, unchanged %t", err, first != nil && first.Unchanged)
		}
		second, err := c.Download(ctx, first)
		if err != nil || !second.Unchanged {
			t.Fatalf("etag %t: the same answers again: %v, unchanged %t", etag, err, second != nil && second.Unchanged)
		}
		if etag && (f.full != 3 || f.notMod != 3) {
			t.Fatalf("with ETags: %d full answers and %d 304s, want 3 and 3", f.full, f.notMod)
		}
		f.mu.Lock()
		f.boot = `{"apiProxies":[], "x":1}`
		f.mu.Unlock()
		third, err := c.Download(ctx, second)
		if err != nil || third.Unchanged || string(third.Bootstrap) != f.boot {
			t.Fatalf("etag %t: a changed bootstrap: %v, %+v", etag, err, third)
		}
		f.mu.Lock()
		f.boot = `{}`
		f.mu.Unlock()
		if _, err := c.Download(ctx, third); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("etag %t: {} downloaded: %v", etag, err)
		}
	}
}

// TestAnswerLargerThanTheLimitSaysSo: hitting max_download_mb is an
// error naming the setting, not a JSON error.
func TestAnswerLargerThanTheLimitSaysSo(t *testing.T) {
	t.Parallel()
	big := `{"apiProxies":[], "pad":"` + strings.Repeat("x", 1<<20) + `"}`
	f := &fakeOrg{boot: big, prod: `{"apiProduct":[]}`}
	_, err := orgClient(t, f, 1).Download(context.Background(), nil)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "edge_config.max_download_mb") {
		t.Fatalf("err = %v", err)
	}
	if _, err := orgClient(t, f, 2).Download(context.Background(), nil); err != nil {
		t.Fatalf("with 2 MiB: %v", err)
	}
}
