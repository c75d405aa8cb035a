package quota

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/mgw-gateway/mgw/plugins/zone"
)

// edgeBackend counts with Apigee's remote quota, batching weights as the
// Node gateway does, but for the instance rather than per worker: every
// worker counts the requests admitted since the last exchange with Edge
// in one shared zone word (pending); the master sends that weight to
// /v2/quotas/apply every second (and at once when asked) and keeps Edge's
// count of the window (which includes other instances) in a second word
// (remote).
//
// A request is admitted while remote + pending stays under the quota L
// and pending stays under the instance's share of what was left at the
// last exchange: ceil((L − remote) / K), K = [quotas] edge_instances (0
// remote before the first exchange of a window). An instance that uses
// up its share refuses and asks the master for an exchange at once. So
// with at most K instances:
//   - before the first exchange of a window they admit together at most
//     K × ceil(L/K), which is L when K divides L;
//   - over a whole window at most L + (K−1) × ceil(L/K): when the last
//     share is taken, Edge counts c < L, that share is at most L − c,
//     and each other instance has at most one share in flight, of at
//     most ceil(L/K).
//
// Without the share rule an instance could admit all of L before its
// first exchange, K × L for K instances. The price: requests over an
// instance's share are refused while its exchange is in flight, so a
// burst may be admitted less than L.
type edgeBackend struct {
	zone      *zone.Zone
	watch     func(identifier string, allow uint32, interval int, timeUnit string)
	instances uint64   // K
	seen      sync.Map // identifier → *edgeSlots
}

type edgeSlots struct {
	pending, remote zone.Slot
	// asked is the remote word when this process last asked for an
	// exchange, so that it asks once per exchange.
	asked atomic.Uint64
}

// Zone slot names of an identifier, shared with the master's syncer.
const (
	PendingSuffix = "#pending"
	RemoteSuffix  = "#remote"
)

func (b *edgeBackend) slots(id string, l *limit) (*edgeSlots, error) {
	if s, ok := b.seen.Load(id); ok {
		return s.(*edgeSlots), nil
	}
	p, err := b.zone.Slot(id + PendingSuffix)
	if err != nil {
		return nil, err
	}
	r, err := b.zone.Slot(id + RemoteSuffix)
	if err != nil {
		return nil, err
	}
	e := &edgeSlots{pending: p, remote: r}
	e.asked.Store(^uint64(0)) // no exchange asked for yet
	s, loaded := b.seen.LoadOrStore(id, e)
	if !loaded && b.watch != nil {
		b.watch(id, l.allow, l.interval, l.unit)
	}
	return s.(*edgeSlots), nil
}

func (b *edgeBackend) take(id string, l *limit, now time.Time) (zone.Window, error) {
	s, err := b.slots(id, l)
	if err != nil {
		return zone.Window{}, err
	}
	word := s.remote.Load()
	used, end := zone.UnpackCount(word)
	if end.IsZero() || !now.Before(end) {
		used, end = 0, l.end(now) // no answer from Edge yet, or its window closed
	}
	k := max(b.instances, 1)
	share := (uint64(l.allow) - min(uint64(used), uint64(l.allow)) + k - 1) / k
	for {
		p := s.pending.Load()
		total := uint64(used) + p
		if total >= uint64(l.allow) {
			return zone.Window{Used: uint32(min(total, uint64(l.allow))), End: end}, nil
		}
		if p >= share {
			// The share is used up: refuse until the next exchange, and
			// ask for it now rather than at the next tick.
			if s.asked.Swap(word) != word && b.watch != nil {
				b.watch(id, l.allow, l.interval, l.unit)
			}
			return zone.Window{Used: uint32(total), End: end}, nil
		}
		if s.pending.CompareAndSwap(p, p+1) {
			return zone.Window{Used: uint32(total + 1), Allowed: true, End: end}, nil
		}
	}
}
