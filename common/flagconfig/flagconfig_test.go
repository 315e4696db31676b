package flagconfig

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	set, err := Parse(fs, []string{"--config", file, "--idle-timeout", "40s"}, Options{ConfigFlag: "config", Getenv: func(k string) string { return env[k] }})
	require.NoError(t, err)
	assert.Equal(t, "config file "+file, set.Source("http-listen"))
	assert.Equal(t, "environment NETWATCH_FANOUT", set.Source("fanout"))
	assert.Equal(t, "command line", set.Source("idle-timeout"))
	assert.Equal(t, "default", set.Source("auth-token"))
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
	set, err := Parse(fs, nil, Options{ConfigFlag: "config", Getenv: func(k string) string { return env[k] }, Aliases: []Alias{port}})
	require.NoError(t, err)
	assert.Equal(t, 2, s.workers)
	assert.Equal(t, "127.0.0.1:9999", s.listen)
	assert.Equal(t, "environment NETWATCH_PORT", set.Source("http-listen"))
	assert.Equal(t, "s3cret", s.token)
	assert.Contains(t, set.Print(), "auth-token: <redacted>")
	assert.NotContains(t, set.Print(), "s3cret")
	assert.Contains(t, set.Print(), "fanout: \"2\"")
}

func TestErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		file string
		env  map[string]string
		want []string
	}{
		{file: "fanout: many\n", want: []string{"--fanout=many (config file ", "netwatch.yaml): not a whole number"}},
		{file: "colour: green\n", want: []string{"unknown field \"colour\""}},
		{file: "config: other.yaml\n", want: []string{"unknown field \"config\""}},
		{file: "check: true\n", want: []string{"unknown field \"check\""}},
		{file: "fanout: [1, {a: b}]\n", want: []string{"--fanout="}},
		{file: "auth-token: <redacted>\n", want: []string{"--auth-token=<redacted>", "placeholder"}},
		{file: "fanout: 2\n", env: map[string]string{"NETWATCH_IDLE_TIMEOUT": "soon"}, want: []string{"--idle-timeout=soon (environment NETWATCH_IDLE_TIMEOUT): not a duration"}},
		{file: "{{{", want: []string{"netwatch.yaml"}},
	} {
		var s settings
		fs := newFlags(&s)
		fs.Bool("check", false, "")
		_, err := Parse(fs, []string{"--config", writeFile(t, tc.file)}, Options{ConfigFlag: "config", Commands: []string{"check"}, Getenv: func(k string) string { return tc.env[k] }})
		require.Error(t, err, tc.file)
		var se *SettingError
		assert.ErrorAs(t, err, &se, tc.file)
		for _, w := range tc.want {
			assert.Contains(t, err.Error(), w, tc.file)
		}
	}
	var s settings
	_, err := Parse(newFlags(&s), []string{"--config", "/nonexistent/netwatch.yaml"}, Options{ConfigFlag: "config"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--config=/nonexistent/netwatch.yaml (command line): open /nonexistent/netwatch.yaml")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--colour", "red"}, "unknown flag --colour (see --help)"},
		{[]string{"--fanout"}, "--fanout (command line): needs a value"},
		{[]string{"--fanout=x"}, "--fanout=x (command line): not a whole number"},
		{[]string{"-fanout", "99999999999999999999"}, "out of range"},
		{[]string{"--promisc=maybe"}, "--promisc=maybe (command line): not true or false"},
		{[]string{"---fanout=2"}, "bad flag syntax"},
	} {
		_, err := Parse(newFlags(&s), tc.args, Options{ConfigFlag: "config", Getenv: func(string) string { return "" }})
		var se *SettingError
		require.ErrorAs(t, err, &se, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want, "%v", tc.args)
	}
	_, err = Parse(newFlags(&s), []string{"--help"}, Options{})
	assert.ErrorIs(t, err, flag.ErrHelp)
}

// TestCommandLineSyntax: the forms of the flag package, each flag set once (a
// Func flag that appends would otherwise see the command line twice).
func TestCommandLineSyntax(t *testing.T) {
	var s settings
	fs := newFlags(&s)
	var origins []string
	fs.Func("origin", "", func(v string) error { origins = append(origins, v); return nil })
	set, err := Parse(fs, []string{"-fanout=3", "--promisc=false", "--origin", "a", "--idle-timeout", "5s", "--origin=b", "rest", "--fanout", "9"}, Options{Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	assert.Equal(t, 3, s.workers)
	assert.False(t, s.promisc)
	assert.Equal(t, 5*time.Second, s.idle)
	assert.Equal(t, []string{"a", "b"}, origins)
	assert.Equal(t, []string{"rest", "--fanout", "9"}, fs.Args(), "the first non-flag ends the flags")
	assert.Equal(t, "command line", set.Source("promisc"))
	_, err = Parse(newFlags(&s), []string{"--promisc", "--", "--fanout"}, Options{Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	assert.True(t, s.promisc)
}

// TestPrintIsAcceptedBack: Print's output, as the config file, gives the same
// settings and prints the same again.
func TestPrintIsAcceptedBack(t *testing.T) {
	var s settings
	fs := newFlags(&s)
	fs.Bool("check", false, "")
	opts := Options{ConfigFlag: "config", Commands: []string{"check"}, Getenv: func(string) string { return "" }}
	set, err := Parse(fs, []string{"--fanout", "7", "--idle-timeout", "1m30s", "--http-listen", "[::1]:80", "--check"}, opts)
	require.NoError(t, err)
	printed := set.Print()
	assert.NotContains(t, printed, "check")
	assert.NotContains(t, printed, "config")
	var s2 settings
	fs2 := newFlags(&s2)
	fs2.Bool("check", false, "")
	set2, err := Parse(fs2, []string{"--config", writeFile(t, printed)}, opts)
	require.NoError(t, err)
	s2.config = ""
	assert.Equal(t, s, s2)
	assert.Equal(t, printed, set2.Print())
}

// TestChanged names the settings whose effective values differ between two
// parses, a value with a newline or a quote included, and not the ones that stay.
func TestChanged(t *testing.T) {
	opts := Options{ConfigFlag: "config", Getenv: func(string) string { return "" }}
	print := func(args ...string) string {
		var s settings
		set, err := Parse(newFlags(&s), args, opts)
		require.NoError(t, err)
		return set.Print()
	}
	base := print("--fanout", "2", "--http-listen", "a\nb\"c")
	assert.Empty(t, Changed(base, print("--fanout", "2", "--http-listen", "a\nb\"c")), "the same settings")
	assert.Equal(t, []string{"fanout", "http-listen"}, Changed(base, print("--fanout", "3", "--http-listen", "a\nb\"d")))
	assert.Equal(t, []string{"idle-timeout"}, Changed(base, print("--fanout", "2", "--http-listen", "a\nb\"c", "--idle-timeout", "1m")))
	assert.Equal(t, []string{"auth-token"}, Changed(base, print("--fanout", "2", "--http-listen", "a\nb\"c", "--auth-token", "x")), "a secret set")
	assert.Equal(t, []string{"gone", "new"}, Changed("gone: \"1\"\nsame: x\n", "same: x\nnew: \"2\"\n"), "a setting in one only")
}

type fieldsConfig struct{ Ring, Block int }

func (c fieldsConfig) Check() error {
	if c.Block&(c.Block-1) != 0 {
		return Fieldf("Block", "must be a power of two, got %d", c.Block)
	}
	return Fieldf("Unmapped", "bad")
}

// TestExplainNamesFlagAndSource: a FieldError of a nested struct comes out as the
// flag that sets the field, with its value and where that came from.
func TestExplainNamesFlagAndSource(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var c fieldsConfig
	fs.IntVar(&c.Block, "ring-block-size", 4096, "")
	fs.IntVar(&c.Ring, "ring-size", 8192, "")
	env := map[string]string{"NETWATCH_RING_BLOCK_SIZE": "3000"}
	set, err := Parse(fs, nil, Options{Getenv: func(k string) string { return env[k] }})
	require.NoError(t, err)
	flags := map[string]string{"Capture.Block": "ring-block-size"}
	err = set.Explain(Under("Capture", c.Check()), flags)
	assert.EqualError(t, err, "--ring-block-size=3000 (environment NETWATCH_RING_BLOCK_SIZE): must be a power of two, got 3000")
	c.Block = 4096
	assert.EqualError(t, set.Explain(Under("Capture", c.Check()), flags), "Capture.Unmapped: bad", "a field no flag sets keeps its name")
	assert.EqualError(t, set.Errorf("ring-size", "too small"), "--ring-size=8192 (default): too small")
	assert.NoError(t, set.Explain(nil, flags))
}

// TestUsage: --name spelling, the type, and the default once.
func TestUsage(t *testing.T) {
	var s settings
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.StringVar(&s.listen, "http-listen", "127.0.0.1:8080", "address of the `HOST:PORT` API")
	fs.BoolVar(&s.promisc, "promisc", true, "promiscuous mode")
	fs.StringVar(&s.token, "auth-token", "", "bearer token")
	fs.Bool("check", false, "validate and exit")
	var sb strings.Builder
	Usage(&sb, fs, "Usage: t [flags]\n")
	assert.Equal(t, `Usage: t [flags]

  --auth-token string
      bearer token
  --check
      validate and exit
  --http-listen HOST:PORT
      address of the HOST:PORT API (default 127.0.0.1:8080)
  --promisc
      promiscuous mode (default true)
`, sb.String())
}

func TestCheckAddresses(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:9090", ":8080", "[::1]:0", "localhost:http"} {
		assert.NoError(t, CheckListen(ok), ok)
	}
	for _, bad := range []string{"127.0.0.1:99999", "127.0.0.1", "127.0.0.1:", "127.0.0.1:-1", "127.0.0.1:nope"} {
		assert.Error(t, CheckListen(bad), bad)
	}
	assert.EqualError(t, CheckListen("127.0.0.1:99999"), "port 99999 is out of range (0 to 65535)")
	assert.EqualError(t, CheckListen("127.0.0.1:nope"), `port "nope" is not a number or a known service name`)
	assert.EqualError(t, CheckDial("h:99999"), "port 99999 is out of range (1 to 65535)")
	assert.NoError(t, CheckDial("collector.example:9090"))
	for _, bad := range []string{":9090", "h:0", "h:70000"} {
		assert.Error(t, CheckDial(bad), bad)
	}
}

func TestLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9090", true},
		{"127.8.9.10:9090", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"[::ffff:127.0.0.1]:1", true},
		{":8080", false},
		{"0.0.0.0:8080", false},
		{"[::]:8080", false},
		{"10.0.0.1:9090", false},
		{"localhost.example:9090", false},
		{"collector:9090", false},
		{"127.0.0.1", false},
	} {
		assert.Equal(t, tc.want, Loopback(tc.addr), tc.addr)
	}
}
