package peerlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestOneLinePerPeerAndKind: the refusals of one peer IP with one message give
// one line per window, whatever the port or the reason; another message or IP has
// its own; the next window's line counts the suppressed ones.
func TestOneLinePerPeerAndKind(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), 30*time.Second, func() time.Time { return now })
	for i := range 5 {
		l.Refused(slog.LevelWarn, "192.0.2.1:"+string(rune('1'+i))+"000", "refused sensor stream", "bad token")
	}
	l.Refused(slog.LevelWarn, "192.0.2.1:1", "refused sensor stream", "no hello in time")
	l.Refused(slog.LevelWarn, "192.0.2.1:1", "refused connection", "bad token")
	l.Refused(slog.LevelWarn, "[::ffff:192.0.2.2]:1", "refused sensor stream", "bad token")
	l.Refused(slog.LevelDebug, "192.0.2.3:1", "refused sensor stream", "bad token") // below the level: not counted
	assert.Equal(t, 3, strings.Count(buf.String(), "\n"), buf.String())
	now = now.Add(30 * time.Second)
	l.Refused(slog.LevelWarn, "192.0.2.1:9", "refused sensor stream", "bad token", "err", "x")
	last := buf.String()[strings.LastIndex(strings.TrimSpace(buf.String()), "\n")+1:]
	assert.Contains(t, last, `peer=192.0.2.1:9 reason="bad token" err=x suppressed=5 window=30s`)
}
