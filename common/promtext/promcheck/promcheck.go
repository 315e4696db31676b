// Package promcheck runs Prometheus's own checker (promtool check metrics: the
// syntax, and its lint rules for names, types and help) on a text exposition.
// Tests only.
package promcheck

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Lint fails t unless promtool accepts, without a remark, what write writes.
func Lint(t testing.TB, write func(*bufio.Writer)) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool is needed (Debian package prometheus; make deps installs it)")
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	write(bw)
	require.NoError(t, bw.Flush())
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics: %s", out)
	assert.Empty(t, strings.TrimSpace(string(out)), "promtool check metrics")
}
