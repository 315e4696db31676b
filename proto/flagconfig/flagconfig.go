// Package flagconfig fills a flag.FlagSet from, in increasing precedence, a YAML
// file, NETWATCH_* environment variables and the command line — one mechanism for
// both Netwatch binaries, so every setting has one name everywhere:
//
//	flag        --grpc-listen 127.0.0.1:9090
//	environment NETWATCH_GRPC_LISTEN=127.0.0.1:9090
//	YAML file   grpc-listen: 127.0.0.1:9090
//
// Aliases map the seed architecture's variable names (NETWATCH_PORT...) to flags.
// A bad value names the field and where it came from.
package flagconfig

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

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
}

// EnvName is the environment variable of a flag: NETWATCH_ + upper case, '-' as '_'.
func EnvName(flagName string) string {
	return "NETWATCH_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// SettingError is a bad value (or unknown field) in the file or the environment.
// Errors of the command line itself come from the flag package, which has already
// printed them with the usage.
type SettingError struct{ err error }

func (e *SettingError) Error() string { return e.err.Error() }
func (e *SettingError) Unwrap() error { return e.err }

// Parse sets fs from the file named by the config flag (if given), then from the
// environment, then from args (flags win over environment, environment over the
// file, the file over defaults).
func Parse(fs *flag.FlagSet, args []string, opts Options) error {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	// First pass: to learn the file's path (and fail early on bad flags).
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := ""
	if opts.ConfigFlag != "" {
		if f := fs.Lookup(opts.ConfigFlag); f != nil {
			path = f.Value.String()
		}
		if path == "" {
			path = getenv(EnvName(opts.ConfigFlag))
		}
	}
	if path != "" {
		if err := applyFile(fs, path, opts.ConfigFlag); err != nil {
			return &SettingError{err}
		}
	}
	if err := applyEnv(fs, getenv, opts.Aliases); err != nil {
		return &SettingError{err}
	}
	// The command line wins: set its flags again, in order.
	return fs.Parse(args)
}

func applyFile(fs *flag.FlagSet, path, configFlag string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil || k == configFlag {
			return fmt.Errorf("config %s: unknown field %q (fields are the flag names; see --help)", path, k)
		}
		v, err := scalar(doc[k])
		if err != nil {
			return fmt.Errorf("config %s: field %s: %w", path, k, err)
		}
		if err := fs.Set(k, v); err != nil {
			return fmt.Errorf("config %s: field %s: bad value %q: %w", path, k, v, err)
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

func applyEnv(fs *flag.FlagSet, getenv func(string) string, aliases []Alias) error {
	for _, a := range aliases {
		v := getenv(a.Env)
		if v == "" {
			continue
		}
		if a.Convert != nil {
			var err error
			if v, err = a.Convert(v); err != nil {
				return fmt.Errorf("environment %s: %w", a.Env, err)
			}
		}
		if err := fs.Set(a.Flag, v); err != nil {
			return fmt.Errorf("environment %s (--%s): bad value %q: %w", a.Env, a.Flag, v, err)
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("environment %s (--%s): bad value %q: %w", EnvName(f.Name), f.Name, v, serr)
			}
		}
	})
	return err
}

// Print writes the effective value of every flag as YAML (for --print-config),
// hiding the values of flags whose name contains "token" or "key".
func Print(fs *flag.FlagSet) string {
	var sb strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		v := f.Value.String()
		if (strings.Contains(f.Name, "token") || strings.HasSuffix(f.Name, "-key")) && v != "" && !strings.HasSuffix(f.Name, "-file") {
			v = "<redacted>"
		}
		out, _ := yaml.Marshal(map[string]string{f.Name: v})
		sb.Write(out)
	})
	return sb.String()
}
