package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runCollector(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestConfigPrecedence: flags > NETWATCH_* environment > YAML file > defaults.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "collector.yaml")
	require.NoError(t, os.WriteFile(file, []byte("retention: 30m\nmax-flows: 5000\nhttp-listen: 127.0.0.1:18080\n"), 0o600))
	t.Setenv("NETWATCH_MAX_FLOWS", "6000")
	t.Setenv("NETWATCH_PORT", "18181")
	code, out, errOut := runCollector(t, "--config", file, "--http-listen", "127.0.0.1:18282", "--print-config")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "retention: 30m0s\n", "file over default")
	assert.Contains(t, out, "max-flows: \"6000\"\n", "environment over file")
	assert.Contains(t, out, "http-listen: 127.0.0.1:18282\n", "flag over environment alias")
}

func TestBadSettingsNameTheField(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		file string
		env  map[string]string
		args []string
		want string
	}{
		{name: "file value", file: "retention: forever\n", want: "field retention"},
		{name: "file field", file: "colour: green\n", want: `unknown field "colour"`},
		{name: "env", env: map[string]string{"NETWATCH_MAX_FLOWS": "lots"}, want: "NETWATCH_MAX_FLOWS"},
		{name: "port alias", env: map[string]string{"NETWATCH_PORT": "99999"}, want: "NETWATCH_PORT"},
		{name: "auth enabled without token", env: map[string]string{"NETWATCH_AUTH_ENABLED": "true"}, want: "NETWATCH_AUTH_ENABLED"},
		{name: "public API without token", args: []string{"--http-listen", "0.0.0.0:8080"}, want: "http-listen"},
		{name: "cleanup interval", args: []string{"--cleanup-interval", "1h"}, want: "cleanup-interval"},
		{name: "log format", args: []string{"--log-format", "xml"}, want: "log-format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := append([]string{"--data-dir", "", "--check"}, tc.args...)
			if tc.file != "" {
				p := filepath.Join(dir, tc.name+".yaml")
				require.NoError(t, os.WriteFile(p, []byte(tc.file), 0o600))
				args = append(args, "--config", p)
			}
			code, _, errOut := runCollector(t, args...)
			assert.Equal(t, 2, code)
			assert.Contains(t, errOut, tc.want)
		})
	}
	code, out, _ := runCollector(t, "--data-dir", "", "--check")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "configuration ok")
}
