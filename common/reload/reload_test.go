package reload

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
)

func logged(r *Report, from, to slog.Level) (line string, after slog.Level) {
	var buf bytes.Buffer
	level := &slog.LevelVar{}
	level.Set(from)
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	r.Log(log, level, to)
	return buf.String(), level.Level()
}

func TestReport(t *testing.T) {
	for _, tc := range []struct {
		name     string
		build    func(*Report)
		from, to slog.Level
		want     string
	}{
		{"nothing at all", func(*Report) {}, slog.LevelInfo, slog.LevelInfo,
			`level=INFO msg="reloaded: nothing; unchanged: nothing"` + "\n"},
		{"applied and unchanged", func(r *Report) {
			r.Applied("token")
			r.LogLevel("info", "debug")
			r.Unchanged("sensor tokens")
		}, slog.LevelInfo, slog.LevelDebug,
			`level=INFO msg="reloaded: token, log level info→debug; unchanged: sensor tokens"` + "\n"},
		{"raised to warn still shows the line", func(r *Report) { r.LogLevel("info", "warn") }, slog.LevelInfo, slog.LevelWarn,
			`level=INFO msg="reloaded: log level info→warn; unchanged: nothing"` + "\n"},
		{"lowered from error shows it too", func(r *Report) { r.LogLevel("error", "info") }, slog.LevelError, slog.LevelInfo,
			`level=INFO msg="reloaded: log level error→info; unchanged: nothing"` + "\n"},
		{"restart needed, reloadable ones left out", func(r *Report) {
			r.LogLevel("info", "info")
			r.RestartNeeded("token: a\nlog-level: info\nretention: 1h\nbpf: \"\"\n", "token: b\nlog-level: debug\nretention: 2h\nbpf: tcp\n", "token", "log-level")
		}, slog.LevelInfo, slog.LevelInfo,
			`level=INFO msg="reloaded: nothing; unchanged: log level info" restart_needed_for="bpf, retention"` + "\n"},
		{"a failure is an error", func(r *Report) {
			r.Failed("api token: empty")
			r.Failed("sensor token file: missing")
			r.Unchanged("log level info")
		}, slog.LevelInfo, slog.LevelInfo,
			`level=ERROR msg="reloaded: nothing; unchanged: log level info" failed="api token: empty; sensor token file: missing"` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Report
			tc.build(&r)
			line, after := logged(&r, tc.from, tc.to)
			assert.Equal(t, tc.want, line)
			assert.Equal(t, tc.to, after, "the new level is in force afterwards")
		})
	}
}
