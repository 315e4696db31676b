package flagconfig

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type settings struct {
	listen  string
	workers int
	promisc bool
	idle    time.Duration
	token   string
	config  string
}

func newFlags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.listen, "http-listen", "127.0.0.1:8080", "")
	fs.IntVar(&s.workers, "fanout", 1, "")
	fs.BoolVar(&s.promisc, "promisc", true, "")
	fs.DurationVar(&s.idle, "idle-timeout", 30*time.Second, "")
	fs.StringVar(&s.token, "auth-token", "", "")
	fs.StringVar(&s.config, "config", "", "")
	return fs
}

func writeFile(t *testing.T, text string) string {
	p := filepath.Join(t.TempDir(), "netwatch.yaml")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

func TestPrecedenceFlagsOverEnvOverFileOverDefaults(t *testing.T) {
	file := writeFile(t, "http-listen: 127.0.0.1:1111\nfanout: 3\npromisc: false\nidle-timeout: 10s\n")
	env := map[string]string{"NETWATCH_FANOUT": "4", "NETWATCH_IDLE_TIMEOUT": "20s"}
	var s settings
	fs := newFlags(&s)
	err := Parse(fs, []string{"--config", file, "--idle-timeout", "40s"}, Options{ConfigFlag: "config", Getenv: func(k string) string { return env[k] }})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:1111", s.listen, "file over default")
	assert.Equal(t, 4, s.workers, "environment over file")
	assert.False(t, s.promisc, "file over default")
	assert.Equal(t, 40*time.Second, s.idle, "flag over environment")
}

func TestConfigFileFromEnvironmentAndAliases(t *testing.T) {
	file := writeFile(t, "fanout: 2\n")
	env := map[string]string{"NETWATCH_CONFIG": file, "NETWATCH_PORT": "9999", "NETWATCH_AUTH_TOKEN": "s3cret"}
	var s settings
	fs := newFlags(&s)
	port := Alias{Env: "NETWATCH_PORT", Flag: "http-listen", Convert: func(v string) (string, error) {
		if _, err := strconv.Atoi(v); err != nil {
			return "", err
		}
		return "127.0.0.1:" + v, nil
	}}
	require.NoError(t, Parse(fs, nil, Options{ConfigFlag: "config", Getenv: func(k string) string { return env[k] }, Aliases: []Alias{port}}))
	assert.Equal(t, 2, s.workers)
	assert.Equal(t, "127.0.0.1:9999", s.listen)
	assert.Equal(t, "s3cret", s.token)
	assert.Contains(t, Print(fs), "auth-token: <redacted>")
	assert.Contains(t, Print(fs), "fanout: \"2\"")
}

func TestErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		file string
		env  map[string]string
		want []string
	}{
		{file: "fanout: many\n", want: []string{"field fanout", "netwatch.yaml"}},
		{file: "colour: green\n", want: []string{"unknown field \"colour\""}},
		{file: "fanout: [1, {a: b}]\n", want: []string{"field fanout"}},
		{file: "fanout: 2\n", env: map[string]string{"NETWATCH_IDLE_TIMEOUT": "soon"}, want: []string{"NETWATCH_IDLE_TIMEOUT", "--idle-timeout"}},
		{file: "{{{", want: []string{"netwatch.yaml"}},
	} {
		var s settings
		fs := newFlags(&s)
		err := Parse(fs, []string{"--config", writeFile(t, tc.file)}, Options{ConfigFlag: "config", Getenv: func(k string) string { return tc.env[k] }})
		require.Error(t, err, tc.file)
		var se *SettingError
		assert.ErrorAs(t, err, &se, tc.file)
		for _, w := range tc.want {
			assert.Contains(t, err.Error(), w, tc.file)
		}
	}
	var s settings
	err := Parse(newFlags(&s), []string{"--config", "/nonexistent/netwatch.yaml"}, Options{ConfigFlag: "config"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/nonexistent/netwatch.yaml")
}
