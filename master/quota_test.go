package master

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/plugins/quota"
	"github.com/mgw-gateway/mgw/plugins/zone"
)

// TestQuotaSyncerFollowsTheURI: after setURI, weights go to the new
// quota service, and its count of the window lands in the zone.
func TestQuotaSyncerFollowsTheURI(t *testing.T) {
	var a, b atomic.Int32
	answer := func(n *atomic.Int32) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			n.Add(1)
			_, _ = w.Write([]byte(`{"used":7,"expiryTime":` + strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10) + `}`))
		}))
		t.Cleanup(s.Close)
		return s
	}
	sa, sb := answer(&a), answer(&b)
	z := zone.New(64)
	q := &quotaSyncer{
		zone: z, uri: sa.URL, client: sa.Client(), log: zerolog.Nop(),
		ids: map[string]ipc.QuotaWatch{}, kick: make(chan struct{}, 1),
	}
	q.watch(ipc.QuotaWatch{Identifier: "app.product", Allow: 10, Interval: 1, TimeUnit: "minute"})
	q.syncAll()
	q.setURI(sb.URL)
	q.syncAll()
	if a.Load() != 1 || b.Load() != 1 {
		t.Fatalf("calls: old URI %d, new URI %d; want 1 and 1", a.Load(), b.Load())
	}
	s, err := z.Slot("app.product" + quota.RemoteSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if used, _ := zone.UnpackCount(s.Load()); used != 7 {
		t.Fatalf("Edge's count in the zone: %d, want 7", used)
	}
}
