package master

import "time"

// backoff decides how long to wait before restarting a worker that died.
// A worker that had run for at least Stable is replaced at once and its
// failure count starts over. One that dies sooner is failing to start or
// crash-looping: the first such death is still replaced at once, then each
// further one waits twice as long as the one before, from Base up to Max.
type backoff struct {
	Base, Max, Stable time.Duration
	failures          int
}

// Defaults for a worker's restart backoff.
const (
	DefaultBackoffBase   = 250 * time.Millisecond
	DefaultBackoffMax    = 30 * time.Second
	DefaultBackoffStable = 10 * time.Second
)

func newBackoff() backoff {
	return backoff{Base: DefaultBackoffBase, Max: DefaultBackoffMax, Stable: DefaultBackoffStable}
}

// next records a death after uptime and returns the delay before the restart.
func (b *backoff) next(uptime time.Duration) time.Duration {
	if uptime >= b.Stable {
		b.failures = 0
	}
	b.failures++
	if b.failures == 1 {
		return 0
	}
	d := b.Base
	for i := 2; i < b.failures && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// crashLooping reports whether the last death was part of a crash loop.
func (b *backoff) crashLooping() bool { return b.failures > 1 }
