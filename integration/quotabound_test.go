package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mgw-gateway/mgw/integration/fakeedge"
)

// TestQuotaEdgeBoundAcrossInstances: K instances on one edge-backend
// quota of L per minute, each hit by a burst of 3L simultaneous requests
// at the start of the window, admit together at most
// L + (K−1) × ceil(L/K) (docs/PERFORMANCE.md); each could admit L before
// its first exchange with Edge without the share rule.
func TestQuotaEdgeBoundAcrossInstances(t *testing.T) {
	const allow = 10
	for _, k := range []int{2, 4} {
		t.Run(fmt.Sprintf("%d instances", k), func(t *testing.T) {
			fe, _ := helloEdge(t)
			fe.SetProducts(fakeedge.Product{Name: "hello-product", Proxies: []string{"edgemicro_hello"}, APIResources: []string{"/**"},
				Quota: fmt.Sprint(allow), QuotaInterval: "1", QuotaTimeUnit: "minute"})
			cfg := edgeConfig(fe, fmt.Sprintf("[analytics]\nenabled = false\n[quotas]\nbackend = \"edge\"\nedge_instances = %d\n", k))
			cfg = strings.Replace(cfg, `sequence = ["oauth"]`, `sequence = ["oauth", "quota"]`, 1)
			var ins []*instance
			for range k {
				in := newInstance(t, cfg)
				in.start(1, edgeFlags(fe)...)
				ins = append(ins, in)
			}
			token := edgeToken(t, fe, fe.Apps()[0])
			var mu sync.Mutex
			counts := map[int]int{}
			var wg sync.WaitGroup
			for _, in := range ins {
				for range 3 * allow {
					wg.Add(1)
					go func() {
						defer wg.Done()
						st := call(t, "GET", in.url("/hello/x"), map[string]string{"Authorization": "Bearer " + token}, "").status
						mu.Lock()
						counts[st]++
						mu.Unlock()
					}()
				}
			}
			wg.Wait()
			share := (allow + k - 1) / k
			bound := allow + (k-1)*share
			t.Logf("%d instances, %d allowed per minute, %d requests: %d admitted, %d refused (bound %d; without the share rule up to %d)",
				k, allow, 3*allow*k, counts[200], counts[403], bound, k*allow)
			if counts[200]+counts[403] != 3*allow*k {
				t.Fatalf("answers %v", counts)
			}
			if counts[200] > bound {
				t.Fatalf("%d admitted, over the bound %d", counts[200], bound)
			}
			if counts[200] == 0 {
				t.Fatal("nothing admitted")
			}
		})
	}
}
