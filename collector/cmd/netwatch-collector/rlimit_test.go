//go:build unix

package main

import (
	"bytes"
	"log/slog"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFileLimitIsRaisedToTheHardOne: a soft RLIMIT_NOFILE below the hard one is
// raised to it, and the figure is logged at debug.
func TestFileLimitIsRaisedToTheHardOne(t *testing.T) {
	var orig syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig))
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	low := orig
	low.Cur = min(512, orig.Max/2)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low))
	var buf bytes.Buffer
	raiseFileLimit(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	var now syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now))
	assert.Equal(t, orig.Max, now.Cur)
	assert.Contains(t, buf.String(), `msg="open file limit" soft=`+strconv.FormatUint(orig.Max, 10)+" hard="+strconv.FormatUint(orig.Max, 10)+" was="+strconv.FormatUint(low.Cur, 10))
}
