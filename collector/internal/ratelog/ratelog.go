// Package ratelog limits repeated log lines: at most one line per key (a peer, a
// sensor) per window, the next line of that key saying how many were suppressed in
// between. A flood of bad input from one source costs one line a window.
package ratelog

import (
	"sync"
	"time"
)

// MaxKeys bounds the keys remembered; beyond it the quiet ones are dropped (and, if
// none is quiet, all of them).
const MaxKeys = 10_000

// Limiter is safe for concurrent use.
type Limiter[K comparable] struct {
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	keys map[K]*state
}

type state struct {
	last       time.Time
	suppressed int
}

// New builds a limiter of one line per key per window; now is the clock.
func New[K comparable](window time.Duration, now func() time.Time) *Limiter[K] {
	return &Limiter[K]{window: window, now: now, keys: map[K]*state{}}
}

// Window is the limiter's window.
func (l *Limiter[K]) Window() time.Duration { return l.window }

// Allow reports whether a line of key k may be written now and, if so, how many
// were suppressed since the previous one.
func (l *Limiter[K]) Allow(k K) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.keys[k]
	if s == nil {
		if len(l.keys) >= MaxKeys {
			for a, q := range l.keys {
				if now.Sub(q.last) >= l.window {
					delete(l.keys, a)
				}
			}
			if len(l.keys) >= MaxKeys {
				clear(l.keys)
			}
		}
		s = &state{}
		l.keys[k] = s
	} else if now.Sub(s.last) < l.window {
		s.suppressed++
		return false, 0
	}
	suppressed = s.suppressed
	s.last, s.suppressed = now, 0
	return true, suppressed
}
