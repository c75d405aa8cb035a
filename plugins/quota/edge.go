package quota

import (
	"sync"
	"time"

	"github.com/mgw-gateway/mgw/plugins/zone"
)

// edgeBackend counts with Apigee's remote quota, batching weights as the
// Node gateway does, but for the instance rather than per worker: every
// worker counts the requests admitted since the last exchange with Edge
// in one shared zone word (pending); the master sends that weight to
// /v2/quotas/apply every second and keeps Edge's count of the window
// (which includes other instances) in a second word (remote). A request
// is admitted while remote + pending stays under the quota, so the
// instance never exceeds it, and instances together exceed it only by
// what they admit within one exchange.
type edgeBackend struct {
	zone  *zone.Zone
	watch func(identifier string, allow uint32, interval int, timeUnit string)
	seen  sync.Map // identifier → *edgeSlots
}

type edgeSlots struct{ pending, remote zone.Slot }

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
	s, loaded := b.seen.LoadOrStore(id, &edgeSlots{pending: p, remote: r})
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
	used, end := zone.UnpackCount(s.remote.Load())
	if end.IsZero() || !now.Before(end) {
		used, end = 0, l.end(now) // no answer from Edge yet, or its window closed
	}
	for {
		p := s.pending.Load()
		total := uint64(used) + p
		if total >= uint64(l.allow) {
			return zone.Window{Used: uint32(min(total, uint64(l.allow))), End: end}, nil
		}
		if s.pending.CompareAndSwap(p, p+1) {
			return zone.Window{Used: uint32(total + 1), Allowed: true, End: end}, nil
		}
	}
}
