// Package peerlog writes the collector's refusals of peers (TLS handshakes,
// connections over a cap, sensor streams) at most once per peer address and kind
// (message) per window: a flood from one address is one line per window, which
// says how many were suppressed since the last.
package peerlog

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"netwatch.dev/collector/internal/ratelog"
)

// Log is a rate-limited logger of refusals; safe for concurrent use.
type Log struct {
	log     *slog.Logger
	limiter *ratelog.Limiter[key]
}

type key struct {
	ip  netip.Addr
	msg string
}

// New is a Log writing to log at most one line per window per (peer IP, msg).
func New(log *slog.Logger, window time.Duration, now func() time.Time) *Log {
	return &Log{log: log, limiter: ratelog.New[key](window, now)}
}

// Window is the rate limit's window.
func (l *Log) Window() time.Duration { return l.limiter.Window() }

// Refused logs msg at level with "peer" (addr), "reason", then args, unless the
// same peer IP was refused with the same msg within the window: then
// the line is counted, and the next one written says how many were ("suppressed").
func (l *Log) Refused(level slog.Level, addr string, msg, reason string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	ok, suppressed := l.limiter.Allow(key{ip: IP(addr), msg: msg})
	if !ok {
		return
	}
	attrs := make([]any, 0, 8+len(args))
	attrs = append(attrs, "peer", addr, "reason", reason)
	attrs = append(attrs, args...)
	attrs = append(attrs, "suppressed", suppressed, "window", l.Window().String())
	l.log.Log(context.Background(), level, msg, attrs...)
}

// IP is the address of "host:port" (or of a bare host), IPv4-mapped IPv6 unmapped;
// the zero Addr when it is not an IP address.
func IP(addr string) netip.Addr {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}
