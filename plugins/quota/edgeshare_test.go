package quota

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/plugins/zone"
)

func minuteLimit(allow uint32) *limit {
	return &limit{product: "p", allow: allow, interval: 1, unit: "minute", end: func(t time.Time) time.Time { return t.Add(time.Minute) }}
}

// TestEdgeBackendAdmitsItsShareThenAsks: with K = 2 and 10 allowed, an
// instance admits 5 before its first exchange, then refuses and asks the
// master for an exchange once; after it (Edge counts 5), its share is
// ceil(5/2) = 3.
func TestEdgeBackendAdmitsItsShareThenAsks(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	z := zone.New(64)
	asks := 0
	b := &edgeBackend{zone: z, instances: 2, watch: func(string, uint32, int, string) { asks++ }}
	l := minuteLimit(10)
	admitted := func(n int) (got int) {
		for range n {
			w, err := b.take("id", l, now)
			if err != nil {
				t.Fatal(err)
			}
			if w.Allowed {
				got++
			}
		}
		return got
	}
	if got := admitted(8); got != 5 || asks != 2 { // the first watch, and one ask
		t.Fatalf("before the first exchange: %d admitted, %d watches; want 5 and 2", got, asks)
	}
	// The master's exchange: Edge counts the 5, pending drops by them.
	remote, _ := z.Slot("id" + RemoteSuffix)
	pending, _ := z.Slot("id" + PendingSuffix)
	remote.Store(zone.PackCount(5, now.Add(time.Minute)))
	pending.Add(^uint64(4)) // −5
	if got := admitted(5); got != 3 || asks != 3 {
		t.Fatalf("after the exchange: %d admitted, %d watches; want 3 and 3", got, asks)
	}
}

// fakeInstance is one instance of the model below: its zone and backend.
type fakeInstance struct {
	b *edgeBackend
	z *zone.Zone
}

// TestEdgeBackendBoundAcrossInstances runs K instances against a model of
// Edge's quota service in random interleavings of requests and exchanges
// (each exchange adds the instance's pending weight to Edge's count and
// publishes the count back), and checks the stated bounds: before any
// exchange at most K × ceil(L/K), over the window at most
// L + (K−1) × ceil(L/K).
func TestEdgeBackendBoundAcrossInstances(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, k := range []int{1, 2, 4} {
		for _, allow := range []uint32{5, 10, 100} {
			t.Run(fmt.Sprintf("K=%d/L=%d", k, allow), func(t *testing.T) {
				t.Parallel()
				share := (int(allow) + k - 1) / k
				rng := rand.New(rand.NewPCG(uint64(k), uint64(allow)))
				worst := 0
				for round := 0; round < 300; round++ {
					l := minuteLimit(allow)
					var inst []*fakeInstance
					for range k {
						z := zone.New(64)
						inst = append(inst, &fakeInstance{b: &edgeBackend{zone: z, instances: uint64(k)}, z: z})
					}
					edgeCount, admitted, firstExchange := uint64(0), 0, -1
					exchangeP := rng.Float64() // how often exchanges happen
					for step := 0; step < 40*int(allow); step++ {
						in := inst[rng.IntN(k)]
						if rng.Float64() < exchangeP {
							pending, _ := in.z.Slot("id" + PendingSuffix)
							remote, _ := in.z.Slot("id" + RemoteSuffix)
							w := pending.Load()
							edgeCount += w
							remote.Store(zone.PackCount(uint32(edgeCount), now.Add(time.Minute)))
							pending.Add(-w) // wraps, as the master does
							if firstExchange < 0 {
								firstExchange = admitted
							}
							continue
						}
						if w, _ := in.b.take("id", l, now); w.Allowed {
							admitted++
						}
					}
					if firstExchange < 0 {
						firstExchange = admitted
					}
					if firstExchange > k*share {
						t.Fatalf("round %d: %d admitted before the first exchange, bound %d", round, firstExchange, k*share)
					}
					worst = max(worst, admitted)
				}
				if bound := int(allow) + (k-1)*share; worst > bound {
					t.Fatalf("%d admitted in a window, bound %d", worst, bound)
				}
				t.Logf("K=%d L=%d: at most %d admitted (bound %d)", k, allow, worst, int(allow)+(k-1)*share)
			})
		}
	}
}
