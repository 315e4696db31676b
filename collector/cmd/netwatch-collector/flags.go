package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"netwatch.dev/collector/internal/app"
	"netwatch.dev/common/flagconfig"
	"netwatch.dev/common/logging"
)

// fieldFlags maps the fields of app.Config to the flags that set them: the errors
// of its Check and of app.New name fields (flagconfig.FieldError), the user is
// told the flag, its value and where that came from.
var fieldFlags = map[string]string{
	"GRPCListen":                "grpc-listen",
	"HTTPListen":                "http-listen",
	"Ingest.DataDir":            "data-dir",
	"AuthToken":                 "api-token",
	"AllowUnauthenticated":      "allow-unauthenticated",
	"RateLimit.Remote":          "rate-limit",
	"RateLimit.Local":           "rate-limit-local",
	"CORSOrigins":               "cors-origin",
	"Store.Retention":           "retention",
	"Ingest.Retention":          "retention", // New sets it from Store.Retention
	"Store.MaxFlows":            "max-flows",
	"CleanupInterval":           "cleanup-interval",
	"Ingest.SnapshotEvery":      "snapshot-interval",
	"TLSCert":                   "tls-cert",
	"TLSKey":                    "tls-key",
	"TLSClientCA":               "tls-client-ca",
	"Insecure":                  "insecure",
	"SensorTokenFile":           "sensor-token-file",
	"MaxMessageBytes":           "max-message-bytes",
	"Ingest.MaxSensors":         "max-sensors",
	"Live.AllowedOrigins":       "allowed-origins",
	"Live.MaxClients":           "ws-max-clients",
	"Live.IdleTimeout":          "ws-idle-timeout",
	"Live.Alerts.BandwidthBits": "alert-bandwidth-bps",
	"Live.Alerts.CPUPercent":    "alert-cpu",
	"HTTPConns.PerIP":           "http-max-conns-per-ip",
	"HTTPConns.Loopback":        "http-max-conns-loopback",
	"GRPCConns.PerIP":           "grpc-max-conns-per-ip",
	"GRPCConns.Loopback":        "grpc-max-conns-loopback",
	"Ingest.HelloTimeout":       "sensor-hello-timeout",
	"GeoIP.ASNDB":               "geoip-asn-db",
	"GeoIP.CountryDB":           "geoip-country-db",
	"DNSNamesMax":               "dns-names-max",
}

const usageHeader = `Usage: netwatch-collector [flags]

Receives flow deltas from sensors (gRPC), keeps the last hour and serves the query
API (gRPC and REST under /api/v1), live updates (WebSocket) and the dashboard.

Every flag can also be given as the environment variable NETWATCH_<FLAG> (upper case,
'-' as '_', e.g. NETWATCH_GRPC_LISTEN) or as a field of the --config YAML file.
Precedence: flags > environment > file > defaults.

Flags:`

// listValue is a comma-separated list flag (each setting replaces the list).
type listValue struct{ list *[]string }

func (v listValue) String() string {
	if v.list == nil {
		return ""
	}
	return strings.Join(*v.list, ",")
}

func (v listValue) Set(s string) error {
	*v.list = nil
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			*v.list = append(*v.list, o)
		}
	}
	return nil
}

// settings are what the command line, the environment and the config file set.
type settings struct {
	cfg       app.Config
	set       *flagconfig.Settings // where each value came from, for error messages
	tokenFile string
	logLevel  slog.Level
	logFormat string
	check     bool
	effective string // flagconfig's Print: what a reload compares
}

// parse reads the settings; code >= 0 means exit with it (errors are written to
// stderr). A reload calls it again with the same arguments.
func parse(args []string, stdout, stderr io.Writer) (s settings, code int) {
	cfg := app.DefaultConfig()
	cfg.Version = version
	fs := flag.NewFlagSet("netwatch-collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.GRPCListen, "grpc-listen", cfg.GRPCListen, "`address` for sensors and gRPC clients")
	fs.StringVar(&cfg.HTTPListen, "http-listen", cfg.HTTPListen, "`address` of the REST API and dashboard")
	fs.StringVar(&cfg.Ingest.DataDir, "data-dir", cfg.Ingest.DataDir, "`directory` of the durable flow log (empty: memory only)")
	fs.StringVar(&cfg.AuthToken, "api-token", "", "bearer `token` required by the API and /metrics (also NETWATCH_AUTH_TOKEN); without it the API stays on loopback")
	fs.StringVar(&cfg.AuthToken, "auth-token", cfg.AuthToken, "alias of --api-token")
	tokenFile := fs.String("api-token-file", "", "`file` holding the API token (first line), instead of --api-token")
	fs.BoolVar(&cfg.AllowUnauthenticated, "allow-unauthenticated", false, "serve the API without a token beyond loopback: REST on a non-loopback --http-listen, gRPC queries from any client (logs a warning)")
	fs.IntVar(&cfg.RateLimit.Remote, "rate-limit", cfg.RateLimit.Remote, "API `requests` (REST and gRPC queries together) per minute per remote client IP (0: no limit)")
	fs.IntVar(&cfg.RateLimit.Local, "rate-limit-local", cfg.RateLimit.Local, "API `requests` (REST and gRPC queries together) per minute per loopback client (0: no limit)")
	fs.Var(listValue{&cfg.CORSOrigins}, "cors-origin", "comma-separated `origins` (scheme://host[:port]) allowed to call the API cross-origin; empty: same-origin only")
	fs.DurationVar(&cfg.Store.Retention, "retention", cfg.Store.Retention, "how long flows are kept after their last update")
	fs.IntVar(&cfg.Store.MaxFlows, "max-flows", cfg.Store.MaxFlows, "`flows` kept at most; the oldest-idle are evicted beyond it")
	fs.DurationVar(&cfg.CleanupInterval, "cleanup-interval", cfg.CleanupInterval, "how often flows past the retention window are removed (1s to 1m)")
	fs.DurationVar(&cfg.Ingest.SnapshotEvery, "snapshot-interval", cfg.Ingest.SnapshotEvery, "snapshot the durable log, and remove the segments it covers, at least this often while batches arrive (1s or more)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate `file` of the gRPC listener (turns on TLS)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	fs.StringVar(&cfg.TLSClientCA, "tls-client-ca", "", "PEM CA `file` that sensor and client certificates must be signed by (mTLS)")
	fs.StringVar(&cfg.TLSClientCA, "client-ca", "", "alias of --tls-client-ca")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow plaintext gRPC on a non-loopback --grpc-listen (logs a warning)")
	fs.StringVar(&cfg.SensorTokenFile, "sensor-token-file", "", "`file` of \"sensor-id token\" lines; every sensor must then present its bearer token")
	fs.IntVar(&cfg.MaxMessageBytes, "max-message-bytes", cfg.MaxMessageBytes, "largest gRPC message accepted, in `bytes`")
	fs.IntVar(&cfg.Ingest.MaxSensors, "max-sensors", cfg.Ingest.MaxSensors, "most `sensors` the collector keeps in its registry")
	fs.IntVar(&cfg.HTTPConns.PerIP, "http-max-conns-per-ip", cfg.HTTPConns.PerIP, "most open HTTP `connections` per remote client address (an IPv6 client by its /64; 0: no cap)")
	fs.IntVar(&cfg.HTTPConns.Loopback, "http-max-conns-loopback", cfg.HTTPConns.Loopback, "most open HTTP `connections` per loopback address (a local reverse proxy; 0: no cap)")
	fs.IntVar(&cfg.GRPCConns.PerIP, "grpc-max-conns-per-ip", cfg.GRPCConns.PerIP, "most open gRPC `connections` (sensors, clients) per remote address (an IPv6 client by its /64; 0: no cap)")
	fs.IntVar(&cfg.GRPCConns.Loopback, "grpc-max-conns-loopback", cfg.GRPCConns.Loopback, "most open gRPC `connections` per loopback address (0: no cap)")
	fs.DurationVar(&cfg.Ingest.HelloTimeout, "sensor-hello-timeout", cfg.Ingest.HelloTimeout, "close a sensor stream that has not said hello this long after it opened (1s to 5m)")
	fs.Var(listValue{&cfg.Live.AllowedOrigins}, "allowed-origins", "comma-separated host `patterns` (path.Match, e.g. *.example.com) whose pages may open the live WebSocket; empty: same origin only")
	fs.IntVar(&cfg.Live.MaxClients, "ws-max-clients", cfg.Live.MaxClients, "most concurrent live WebSocket `clients`")
	fs.DurationVar(&cfg.Live.IdleTimeout, "ws-idle-timeout", cfg.Live.IdleTimeout, "close a live client that reads nothing for this long")
	fs.Uint64Var(&cfg.Live.Alerts.BandwidthBits, "alert-bandwidth-bps", cfg.Live.Alerts.BandwidthBits, "raise a high-bandwidth alert above this ingest rate, in `bits` per second (0: off)")
	fs.Float64Var(&cfg.Live.Alerts.CPUPercent, "alert-cpu", cfg.Live.Alerts.CPUPercent, "raise an alert when a sensor uses more CPU than this, in `percent` of one core")
	fs.StringVar(&cfg.GeoIP.ASNDB, "geoip-asn-db", "", "MaxMind DB `file` in the GeoLite2-ASN layout giving hosts their autonomous system (reloaded when the file changes, and on SIGHUP)")
	fs.StringVar(&cfg.GeoIP.CountryDB, "geoip-country-db", "", "MaxMind DB `file` in the GeoLite2-Country or -City layout giving hosts their country (reloaded when the file changes, and on SIGHUP)")
	fs.IntVar(&cfg.DNSNamesMax, "dns-names-max", cfg.DNSNamesMax, "`addresses` the table of names from captured DNS responses holds at most, about 280 bytes each (0: no table)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	check := fs.Bool("check", false, "check the configuration as the real run would (files, data directory, addresses) and exit")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log `format`: text or json")
	printConfig := fs.Bool("print-config", false, "print the effective configuration (YAML, accepted back by --config) and exit")
	fs.String("config", "", "YAML `file` of settings named like the flags")
	set, err := flagconfig.Parse(fs, args, flagconfig.Options{ConfigFlag: "config",
		Commands:    []string{"version", "check", "print-config"},
		FlagAliases: map[string]string{"auth-token": "api-token", "client-ca": "tls-client-ca"},
		Aliases: []flagconfig.Alias{
			{Env: "NETWATCH_AUTH_TOKEN", Flag: "api-token"},
			{Env: "NETWATCH_PORT", Flag: "http-listen", Convert: func(v string) (string, error) {
				if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
					return "", fmt.Errorf("%q is not a port number (1-65535)", v)
				}
				return net.JoinHostPort("127.0.0.1", v), nil
			}},
		}})
	if errors.Is(err, flag.ErrHelp) {
		flagconfig.Usage(stdout, fs, usageHeader)
		return s, 0
	}
	fail := func(code int, err error) (settings, int) {
		fmt.Fprintf(stderr, "netwatch-collector: %v\n", set.Explain(err, fieldFlags))
		return s, code
	}
	if err != nil {
		return fail(2, err)
	}
	if *showVersion {
		fmt.Fprintln(stdout, "netwatch-collector", version)
		return s, 0
	}
	if *printConfig {
		// What the settings are, valid or not: --check says what is wrong.
		fmt.Fprint(stdout, set.Print())
		return s, 0
	}
	if fs.NArg() > 0 {
		return fail(2, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0)))
	}
	if v := os.Getenv("NETWATCH_AUTH_ENABLED"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fail(2, &flagconfig.SettingError{Source: "environment NETWATCH_AUTH_ENABLED", Err: fmt.Errorf("%q is not true or false", v)})
		}
		if on && cfg.AuthToken == "" && *tokenFile == "" {
			return fail(2, set.Errorf("api-token", "NETWATCH_AUTH_ENABLED is true but no token is set (--api-token, NETWATCH_AUTH_TOKEN or --api-token-file)"))
		}
	}
	if *tokenFile != "" {
		if cfg.AuthToken != "" {
			return fail(2, set.Errorf("api-token-file", "give either --api-token (or NETWATCH_AUTH_TOKEN) or --api-token-file"))
		}
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fail(2, set.Error("api-token-file", err))
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if cfg.AuthToken = strings.TrimSpace(line); cfg.AuthToken == "" {
			return fail(2, set.Errorf("api-token-file", "%s holds no token on its first line", *tokenFile))
		}
	}
	level, err := logging.ParseLevel(*logLevel)
	if err != nil {
		return fail(2, set.Error("log-level", err))
	}
	if err := logging.CheckFormat(*logFormat); err != nil {
		return fail(2, set.Error("log-format", err))
	}
	return settings{cfg: cfg, set: set, tokenFile: *tokenFile, logLevel: level, logFormat: *logFormat, check: *check, effective: set.Print()}, -1
}
