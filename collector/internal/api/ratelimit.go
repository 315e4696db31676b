package api

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"netwatch.dev/collector/internal/peerlog"
)

// RateLimit is requests per minute per client IP; zero turns the limit off.
type RateLimit struct {
	// Remote applies to every client but loopback ones (seed: 100).
	Remote int
	// Local applies to loopback clients (seed: 1000): the dashboard on this host.
	Local int
}

// Limiter is a token bucket per client IP: a client may burst its whole minute's
// allowance, which refills continuously. The client is the connection's peer
// address (X-Forwarded-For is not trusted: anyone can write it). One Limiter serves
// the REST API and the gRPC query service, so a client has one allowance for both.
type Limiter struct {
	limits  RateLimit
	now     func() time.Time
	mu      sync.Mutex
	buckets map[netip.Addr]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	at     time.Time
}

// maxClients bounds the buckets kept; beyond it the full ones are dropped first.
const maxClients = 100_000

// NewLimiter builds the per-client limiter; now is the clock (nil: time.Now).
func NewLimiter(l RateLimit, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{limits: l, now: now, buckets: map[netip.Addr]*tokenBucket{}}
}

// Allow takes a token for ip; when there is none it returns how long until one.
func (l *Limiter) Allow(ip netip.Addr) (time.Duration, bool) {
	perMin := l.limits.Remote
	if ip.IsLoopback() {
		perMin = l.limits.Local
	}
	if perMin <= 0 {
		return 0, true
	}
	rate := float64(perMin) / float64(time.Minute) // tokens per nanosecond
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[ip]
	if b == nil {
		if len(l.buckets) >= maxClients {
			l.sweep(now)
		}
		b = &tokenBucket{tokens: float64(perMin), at: now}
		l.buckets[ip] = b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(float64(perMin), b.tokens+float64(d)*rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration(math.Ceil((1 - b.tokens) / rate)), false
}

// sweep drops the buckets that have refilled (their clients are not limited), and if
// that is not enough, all of them: the limit then restarts for everyone.
func (l *Limiter) sweep(now time.Time) {
	for ip, b := range l.buckets {
		if now.Sub(b.at) >= time.Minute {
			delete(l.buckets, ip)
		}
	}
	if len(l.buckets) >= maxClients {
		clear(l.buckets)
	}
}

// clientIP is the peer address of r.
func clientIP(r *http.Request) netip.Addr { return peerlog.IP(r.RemoteAddr) }

// RetryAfterSeconds is wait in whole seconds, at least 1 (the Retry-After header).
func RetryAfterSeconds(wait time.Duration) int64 { return max(int64(math.Ceil(wait.Seconds())), 1) }

// rateLimit answers 429 with Retry-After (whole seconds, at least 1) and the error
// body when the client is over its limit.
func rateLimit(l *Limiter, refused *atomic.Uint64, eh errorHandler, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wait, ok := l.Allow(clientIP(r))
		if !ok {
			refused.Add(1)
			secs := RetryAfterSeconds(wait)
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			eh.write(w, r, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED",
				"rate limit exceeded: retry in "+strconv.FormatInt(secs, 10)+"s", map[string]string{"retryAfterSeconds": strconv.FormatInt(secs, 10)})
			return
		}
		next.ServeHTTP(w, r)
	})
}
