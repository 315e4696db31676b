package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseLevel(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     slog.Level
		bad      bool
	}{
		{name: "debug", in: "debug", want: slog.LevelDebug},
		{name: "upper case", in: "WARN", want: slog.LevelWarn},
		{name: "error", in: "error", want: slog.LevelError},
		{name: "unknown", in: "verbose", bad: true},
		{name: "empty", in: "", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLevel(tc.in)
			if tc.bad {
				require.EqualError(t, err, "not one of debug, info, warn, error")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestCheckFormat(t *testing.T) {
	assert.NoError(t, CheckFormat("text"))
	assert.NoError(t, CheckFormat("json"))
	assert.EqualError(t, CheckFormat("xml"), "not one of text, json")
}

func TestNewWritesTheFormatAtTheLevelAndTheLevelCanChange(t *testing.T) {
	var b bytes.Buffer
	log, lv := New(&b, slog.LevelWarn, "json")
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	assert.Equal(t, 1, strings.Count(b.String(), "\n"))
	assert.Contains(t, b.String(), `"msg":"shown","k":1`)
	lv.Set(slog.LevelDebug)
	log.Debug("now shown")
	assert.Contains(t, b.String(), `"msg":"now shown"`)

	b.Reset()
	log, _ = New(&b, slog.LevelInfo, "text")
	log.Info("plain")
	assert.Contains(t, b.String(), "level=INFO msg=plain")
}
