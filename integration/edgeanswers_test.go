package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/integration/fakeedge"
)

// cacheState is the cache file's content and modification time.
func cacheState(t *testing.T, in *instance) (string, time.Time) {
	t.Helper()
	path := in.dir + "/myorg-test-cache-config.json"
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), fi.ModTime()
}

// TestEdgeEmptyAnswerKeepsTheLastGoodConfig: Edge answering 200 with {}
// (or without the list it always sends) is a failed download: the last
// good config keeps serving, the cache file is kept, status and the log
// say so. A real change to zero proxies is applied.
func TestEdgeEmptyAnswerKeepsTheLastGoodConfig(t *testing.T) {
	fe, _ := helloEdge(t)
	in := newInstance(t, edgeConfigNoAuth(fe))
	in.start(1, edgeFlags(fe)...)
	if st, body := get(t, in.url("/hello/x")); st != 200 {
		t.Fatalf("/hello/x: %d %s", st, body)
	}
	cache, _ := cacheState(t, in)
	before, _ := in.status()

	for _, tc := range []struct{ endpoint, missing string }{
		{fakeedge.Bootstrap, "apiProxies"},
		{fakeedge.Products, "apiProduct"},
	} {
		fe.Answer(tc.endpoint, "{}")
		in.eventually(10*time.Second, "the failed poll of "+tc.endpoint+" in status", func() bool {
			st, _ := in.status()
			return st.Config.LastError != nil && strings.Contains(*st.Config.LastError, tc.missing)
		})
		if st, body := get(t, in.url("/hello/x")); st != 200 {
			t.Fatalf("%s answering {}: /hello/x %d %s", tc.endpoint, st, body)
		}
		if now, _ := cacheState(t, in); now != cache {
			t.Fatalf("%s answering {}: the cache file was rewritten:\n%s", tc.endpoint, now)
		}
		fe.Answer(tc.endpoint, "")
		in.eventually(10*time.Second, "a good poll to clear the error", func() bool {
			st, _ := in.status()
			return st.Config.LastError == nil
		})
	}
	if !strings.Contains(in.logs.String(), "no apiProxies list") {
		t.Fatalf("the log does not say what was wrong:\n%s", in.logs.String())
	}
	if st, _ := in.status(); st.Config.Revision != before.Config.Revision {
		t.Fatalf("revision %d → %d for answers that changed nothing", before.Config.Revision, st.Config.Revision)
	}

	fe.SetProxies() // undeployed: a real change to zero proxies
	in.eventually(10*time.Second, "zero proxies to be applied", func() bool {
		st, _ := get(t, in.url("/hello/x"))
		return st == 404
	})
	if now, _ := cacheState(t, in); now == cache {
		t.Fatal("the cache file still holds the proxy after a real change")
	}
}

// TestEdgePollThatChangesNothingWritesNothing: polls that bring the same
// answers (with and without ETags) leave the cache file and the revision
// alone; with ETags they are 304s; a change is still applied.
func TestEdgePollThatChangesNothingWritesNothing(t *testing.T) {
	fe, tgt := helloEdge(t)
	in := newInstance(t, edgeConfigNoAuth(fe))
	in.start(1, edgeFlags(fe)...)
	cache, mtime := cacheState(t, in)
	before, _ := in.status()

	calls := fe.Calls(fakeedge.Bootstrap)
	in.eventually(10*time.Second, "two polls without ETags", func() bool { return fe.Calls(fakeedge.Bootstrap) >= calls+2 })
	fe.SetETags(true)
	in.eventually(15*time.Second, "two 304s", func() bool { return fe.NotModified(fakeedge.Bootstrap) >= 2 })
	if fe.NotModified(fakeedge.Products) < 1 {
		t.Fatal("products were never asked with If-None-Match")
	}
	if now, m := cacheState(t, in); now != cache || !m.Equal(mtime) {
		t.Fatalf("the cache file was rewritten by polls that changed nothing (%v → %v)", mtime, m)
	}
	st, _ := in.status()
	if st.Config.Revision != before.Config.Revision || st.Config.LastError != nil {
		t.Fatalf("revision %d → %d, last error %v", before.Config.Revision, st.Config.Revision, st.Config.LastError)
	}
	if st.Config.LastPoll == nil || !st.Config.LastPoll.After(*before.Config.LastPoll) {
		t.Fatal("status does not show the unchanged polls as successful")
	}

	fe.SetProxies(fakeedge.Proxy{Name: "edgemicro_hello", BasePath: "/hello", URL: tgt},
		fakeedge.Proxy{Name: "edgemicro_open", BasePath: "/open", URL: tgt})
	in.eventually(10*time.Second, "the new proxy to be served", func() bool {
		st, _ := get(t, in.url("/open/x"))
		return st == 200
	})
	if now, _ := cacheState(t, in); now == cache {
		t.Fatal("the cache file was not written after a change")
	}
}
