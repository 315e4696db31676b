// Package flagconfig fills a flag.FlagSet from, in increasing precedence, a YAML
// file, NETWATCH_* environment variables and the command line — one mechanism for
// both Netwatch binaries, so every setting has one name everywhere:
//
//	flag        --grpc-listen 127.0.0.1:9090
//	environment NETWATCH_GRPC_LISTEN=127.0.0.1:9090
//	YAML file   grpc-listen: 127.0.0.1:9090
//
// Aliases map the environment names of Netwatch's first design, which deployments
// may still set (NETWATCH_PORT...), to flags.
// Parse remembers where every value came from, so that a bad value, found while
// parsing or later by a configuration struct's Check (a FieldError, mapped to its
// flag by Settings.Explain), is reported as
//
//	--ring-block-size=3000 (environment NETWATCH_RING_BLOCK_SIZE): block size must be a power of two, got 3000
package flagconfig

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Alias maps an environment variable to a flag, with an optional conversion of its
// value (for example NETWATCH_PORT=8080 to --http-listen 127.0.0.1:8080).
type Alias struct {
	Env     string
	Flag    string
	Convert func(string) (string, error) // nil: the value as is
}

// Options of Parse.
type Options struct {
	// ConfigFlag names the flag holding the YAML file's path ("config").
	ConfigFlag string
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
	// Aliases are extra environment names.
	Aliases []Alias
	// Commands are the flags that ask for an action rather than set something
	// (--check, --print-config, --version): they are taken from the command line
	// only, never from the file or the environment, and Print leaves them out.
	Commands []string
	// FlagAliases maps a flag that is another name of a flag (bound to the same
	// variable) to that flag. Print leaves aliases out; an error about the flag
	// says where the value came from also when the alias set it.
	FlagAliases map[string]string
}

// Where a value came from.
const (
	FromDefault     = "default"
	FromCommandLine = "command line"
)

// EnvName is the environment variable of a flag: NETWATCH_ + upper case, '-' as '_'.
func EnvName(flagName string) string {
	return "NETWATCH_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Redacted is what Print writes for a secret's value (a flag whose name says
// "token", except files). The file loader refuses it back, naming the field.
const Redacted = "<redacted>"

func isSecret(name string) bool {
	return strings.Contains(name, "token") && !strings.HasSuffix(name, "-file")
}

// SettingError is a bad setting: the flag (empty for an error about the file as a
// whole, such as an unknown field), its value, where that value came from
// ("command line", "environment NETWATCH_X", "config file PATH", "default") and
// what is wrong with it.
type SettingError struct {
	Flag, Value, Source string
	Err                 error
}

func (e *SettingError) Error() string {
	switch {
	case e.Flag == "" && e.Source == FromCommandLine:
		return e.Err.Error()
	case e.Flag == "":
		return e.Source + ": " + e.Err.Error()
	case e.Value == "" && e.Source == FromDefault:
		return fmt.Sprintf("--%s (not set): %v", e.Flag, e.Err)
	case e.Value == "" && e.Source == FromCommandLine:
		return fmt.Sprintf("--%s (command line): %v", e.Flag, e.Err)
	}
	v := e.Value
	if isSecret(e.Flag) && v != "" {
		v = Redacted
	}
	if v == "" || strings.ContainsAny(v, " \t\n\"'#") {
		v = strconv.Quote(v)
	}
	return fmt.Sprintf("--%s=%s (%s): %v", e.Flag, v, e.Source, e.Err)
}

func (e *SettingError) Unwrap() error { return e.Err }

// FieldError is a bad value of one field of a configuration struct (what the
// Check methods of the binaries' components return). Field is the field's name,
// a path for nested structs ("Capture.BlockSize", see Under); Settings.Explain
// turns it into a SettingError naming the flag that sets the field.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Fieldf is a FieldError of field with a formatted message (%w wraps).
func Fieldf(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Under qualifies the field of a FieldError with the field holding its struct:
// Under("Capture", BlockSize error) is about "Capture.BlockSize". Other errors are
// returned as they are.
func Under(parent string, err error) error {
	var fe *FieldError
	if err == nil || !errors.As(err, &fe) {
		return err
	}
	return &FieldError{Field: parent + "." + fe.Field, Err: fe.Err}
}

// Settings is the result of Parse: the flags, and where each value came from.
type Settings struct {
	fs      *flag.FlagSet
	opts    Options
	sources map[string]string
}

// Parse sets fs from the file named by the config flag (if given), then from the
// environment, then from args (flags win over environment, environment over the
// file, the file over defaults). It returns flag.ErrHelp for -h/--help (print
// Usage), otherwise every error is a *SettingError.
func Parse(fs *flag.FlagSet, args []string, opts Options) (*Settings, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	s := &Settings{fs: fs, opts: opts, sources: map[string]string{}}
	cmdline, rest, err := splitArgs(fs, args)
	if err != nil {
		return s, err
	}
	path, pathSrc := "", FromCommandLine
	if opts.ConfigFlag != "" {
		for _, kv := range cmdline {
			if kv[0] == opts.ConfigFlag {
				path = kv[1]
			}
		}
		if path == "" {
			path, pathSrc = opts.Getenv(EnvName(opts.ConfigFlag)), "environment "+EnvName(opts.ConfigFlag)
		}
	}
	if path != "" {
		if err := s.applyFile(path, pathSrc); err != nil {
			return s, err
		}
	}
	if err := s.applyEnv(); err != nil {
		return s, err
	}
	for _, kv := range cmdline {
		if err := s.set(kv[0], kv[1], FromCommandLine); err != nil {
			return s, err
		}
	}
	// Only to record the arguments that are not flags (fs.Args); the flags are set.
	if err := fs.Parse(append([]string{"--"}, rest...)); err != nil {
		return s, &SettingError{Source: FromCommandLine, Err: err}
	}
	return s, nil
}

// splitArgs reads the command line with the flag package's syntax (-name, --name,
// --name=value, --name value; a boolean takes no separate value; "--" or the first
// argument that is not a flag ends the flags) without setting anything.
func splitArgs(fs *flag.FlagSet, args []string) (flags [][2]string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, args[i+1:], nil
		}
		if len(a) < 2 || a[0] != '-' {
			return flags, args[i:], nil
		}
		name := strings.TrimPrefix(a[1:], "-")
		if name == "" || name[0] == '-' || name[0] == '=' {
			return nil, nil, &SettingError{Source: FromCommandLine, Err: fmt.Errorf("bad flag syntax %q (flags are --name or --name=value)", a)}
		}
		name, value, hasValue := strings.Cut(name, "=")
		f := fs.Lookup(name)
		if f == nil {
			if name == "help" || name == "h" {
				return nil, nil, flag.ErrHelp
			}
			return nil, nil, &SettingError{Source: FromCommandLine, Err: fmt.Errorf("unknown flag --%s (see --help)", name)}
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			if !hasValue {
				value = "true"
			}
		} else if !hasValue {
			if i+1 >= len(args) {
				return nil, nil, &SettingError{Flag: name, Source: FromCommandLine, Err: errors.New("needs a value")}
			}
			i++
			value = args[i]
		}
		flags = append(flags, [2]string{name, value})
	}
	return flags, nil, nil
}

func (s *Settings) isCommand(name string) bool {
	for _, c := range s.opts.Commands {
		if c == name {
			return true
		}
	}
	return false
}

// set sets one flag and records its source; a bad value is a SettingError that
// says what the flag wants.
func (s *Settings) set(name, value, source string) error {
	f := s.fs.Lookup(name)
	if err := s.fs.Set(name, value); err != nil {
		return &SettingError{Flag: name, Value: value, Source: source, Err: wantOf(f, err)}
	}
	s.sources[name] = source
	return nil
}

// wantOf rephrases the flag package's "parse error" as what the flag's type wants.
func wantOf(f *flag.Flag, err error) error {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return err
	}
	switch g.Get().(type) {
	case bool:
		return errors.New("not true or false")
	case time.Duration:
		return errors.New("not a duration (e.g. 500ms, 30s, 5m, 1h)")
	case int, int64, uint, uint64:
		if strings.Contains(err.Error(), "range") {
			return errors.New("out of range")
		}
		return errors.New("not a whole number")
	case float64:
		return errors.New("not a number")
	}
	return err
}

func (s *Settings) applyFile(path, pathSrc string) error {
	src := "config file " + path
	b, err := os.ReadFile(path)
	if err != nil {
		return &SettingError{Flag: s.opts.ConfigFlag, Value: path, Source: pathSrc, Err: err}
	}
	s.sources[s.opts.ConfigFlag] = pathSrc
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return &SettingError{Source: src, Err: err}
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if s.fs.Lookup(k) == nil || k == s.opts.ConfigFlag || s.isCommand(k) {
			return &SettingError{Source: src, Err: fmt.Errorf("unknown field %q (fields are the flag names; see --help)", k)}
		}
		v, err := scalar(doc[k])
		if err != nil {
			return &SettingError{Flag: k, Value: fmt.Sprint(doc[k]), Source: src, Err: err}
		}
		if v == Redacted && isSecret(k) {
			return &SettingError{Flag: k, Value: v, Source: src, Err: errors.New("is the placeholder --print-config writes for a secret: put the secret itself (or leave the field out)")}
		}
		if err := s.set(k, v, src); err != nil {
			return err
		}
	}
	return nil
}

func scalar(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(x), nil
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, err := scalar(e)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("%v is not a value (want a string, number, boolean or list)", v)
}

func (s *Settings) applyEnv() error {
	for _, a := range s.opts.Aliases {
		v := s.opts.Getenv(a.Env)
		if v == "" {
			continue
		}
		src := "environment " + a.Env
		if a.Convert != nil {
			var err error
			if v, err = a.Convert(v); err != nil {
				return &SettingError{Flag: a.Flag, Value: v, Source: src, Err: err}
			}
		}
		if err := s.set(a.Flag, v, src); err != nil {
			return err
		}
	}
	var err error
	s.fs.VisitAll(func(f *flag.Flag) {
		if err != nil || s.isCommand(f.Name) || f.Name == s.opts.ConfigFlag {
			return
		}
		if v := s.opts.Getenv(EnvName(f.Name)); v != "" {
			err = s.set(f.Name, v, "environment "+EnvName(f.Name))
		}
	})
	return err
}

// Source says where the flag's value came from: "command line", "environment
// NETWATCH_X", "config file PATH" or "default".
func (s *Settings) Source(name string) string {
	if src := s.sources[name]; src != "" {
		return src
	}
	return FromDefault
}

// Error is a SettingError about the flag's current value (named as the alias
// that set it, if an alias did).
func (s *Settings) Error(name string, err error) error {
	if s.sources[name] == "" {
		for alias, of := range s.opts.FlagAliases {
			if of == name && s.sources[alias] != "" {
				name = alias
			}
		}
	}
	v := ""
	if f := s.fs.Lookup(name); f != nil {
		v = f.Value.String()
	}
	return &SettingError{Flag: name, Value: v, Source: s.Source(name), Err: err}
}

// Errorf is Error with a formatted message.
func (s *Settings) Errorf(name, format string, args ...any) error {
	return s.Error(name, fmt.Errorf(format, args...))
}

// Explain turns a FieldError into the SettingError of the flag that sets the field
// (flags maps field paths to flag names, the one table of a binary). Other errors,
// and fields that no flag sets, are returned as they are.
func (s *Settings) Explain(err error, flags map[string]string) error {
	var fe *FieldError
	var se *SettingError
	switch {
	case err == nil || errors.As(err, &se):
		return err
	case errors.As(err, &fe):
		if name, ok := flags[fe.Field]; ok {
			return s.Error(name, fe.Err)
		}
	}
	return err
}

// Print writes the effective value of every setting as YAML (for --print-config),
// which Parse accepts back as the config file. It leaves out the config flag and
// the commands, and writes Redacted for a secret.
func (s *Settings) Print() string {
	var sb strings.Builder
	s.fs.VisitAll(func(f *flag.Flag) {
		if _, alias := s.opts.FlagAliases[f.Name]; alias || f.Name == s.opts.ConfigFlag || s.isCommand(f.Name) {
			return
		}
		v := f.Value.String()
		if isSecret(f.Name) && v != "" {
			v = Redacted
		}
		out, _ := yaml.Marshal(map[string]string{f.Name: v})
		sb.Write(out)
	})
	return sb.String()
}

// Changed names, sorted, the settings whose values differ between two outputs of
// Print (the settings in force and those read again, say), a setting in only one
// of them included. A secret's change shows only to or from empty (Print redacts
// the value). A text that is not Print's YAML counts as no settings.
func Changed(before, after string) []string {
	var b, a map[string]string
	_ = yaml.Unmarshal([]byte(before), &b)
	_ = yaml.Unmarshal([]byte(after), &a)
	var out []string
	for k, v := range a {
		if old, ok := b[k]; !ok || old != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Usage writes header, then every flag as "--name TYPE", its description and its
// default (once: a description must not repeat it) on the next line.
func Usage(w io.Writer, fs *flag.FlagSet, header string) {
	fmt.Fprint(w, strings.TrimRight(header, "\n")+"\n\n")
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		desc := usage
		if f.DefValue != "" && !(typ == "" && f.DefValue == "false") {
			def := f.DefValue
			if strings.ContainsAny(def, " \t") {
				def = strconv.Quote(def)
			}
			desc += " (default " + def + ")"
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, desc)
	})
}

// CheckListen says what is wrong with a listen address (host:port, host may be
// empty for every address): what net.Listen would refuse before binding.
func CheckListen(addr string) error { return checkAddr(addr, true) }

// CheckDial says what is wrong with a host:port to connect to.
func CheckDial(addr string) error { return checkAddr(addr, false) }

func checkAddr(addr string, listen bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || (!listen && host == "") {
		return errors.New("not host:port")
	}
	lowest := 0
	if !listen {
		lowest = 1
	}
	n, err := net.LookupPort("tcp", port)
	switch {
	case err != nil && strings.Trim(port, "0123456789") == "":
		return fmt.Errorf("port %s is out of range (%d to 65535)", port, lowest)
	case err != nil:
		return fmt.Errorf("port %q is not a number or a known service name", port)
	case n == 0 && !listen:
		return errors.New("port 0 cannot be connected to")
	}
	return nil
}

// Loopback reports whether addr (host:port, as CheckListen and CheckDial take)
// names this host only: "localhost" or a loopback IP. An empty host (every
// address) is not loopback.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
