// Command netwatch-collector receives flow deltas from sensors, keeps the last hour in
// memory and serves the query API (gRPC and REST), live updates and the dashboard.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"netwatch.dev/collector/internal/app"
	"netwatch.dev/proto/flagconfig"
)

// version is stamped by the build (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg := app.DefaultConfig()
	cfg.Version = version
	fs := flag.NewFlagSet("netwatch-collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.GRPCListen, "grpc-listen", cfg.GRPCListen, "address for sensors and gRPC clients")
	fs.StringVar(&cfg.HTTPListen, "http-listen", cfg.HTTPListen, "address of the REST API and dashboard")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory of the durable flow log (empty: memory only)")
	fs.StringVar(&cfg.AuthToken, "api-token", "", "bearer token required by the API and /metrics (also NETWATCH_AUTH_TOKEN); without it the API stays on loopback")
	fs.StringVar(&cfg.AuthToken, "auth-token", cfg.AuthToken, "alias of --api-token")
	tokenFile := fs.String("api-token-file", "", "file holding the API token (first line), instead of --api-token")
	fs.BoolVar(&cfg.AllowUnauthenticated, "allow-unauthenticated", false, "serve the API on a non-loopback --http-listen without a token (logs a warning)")
	fs.IntVar(&cfg.RateLimit.Remote, "rate-limit", cfg.RateLimit.Remote, "API requests per minute per remote client IP (0: no limit)")
	fs.IntVar(&cfg.RateLimit.Local, "rate-limit-local", cfg.RateLimit.Local, "API requests per minute per loopback client (0: no limit)")
	corsOrigins := fs.String("cors-origin", "", "comma-separated origins (scheme://host[:port]) allowed to call the API cross-origin; empty: same-origin only")
	fs.DurationVar(&cfg.Retention, "retention", cfg.Retention, "how long flows are kept after their last update")
	fs.IntVar(&cfg.MaxFlows, "max-flows", cfg.MaxFlows, "flows kept at most; the oldest-idle are evicted beyond it")
	fs.DurationVar(&cfg.CleanupInterval, "cleanup-interval", cfg.CleanupInterval, "how often flows past the retention window are removed (also NETWATCH_CLEANUP_INTERVAL)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate of the gRPC listener (turns on TLS)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&cfg.TLSClientCA, "tls-client-ca", "", "PEM CA that sensor and client certificates must be signed by (mTLS)")
	fs.StringVar(&cfg.TLSClientCA, "client-ca", "", "alias of --tls-client-ca")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow plaintext gRPC on a non-loopback --grpc-listen (logs a warning)")
	fs.StringVar(&cfg.SensorTokenFile, "sensor-token-file", "", "file of \"sensor-id token\" lines; every sensor must then present its bearer token")
	fs.IntVar(&cfg.MaxMessageBytes, "max-message-bytes", cfg.MaxMessageBytes, "largest gRPC message accepted, in bytes")
	fs.IntVar(&cfg.MaxSensors, "max-sensors", cfg.MaxSensors, "most sensors the collector keeps in its registry")
	fs.Func("allowed-origins", "comma-separated host patterns (path.Match, e.g. *.example.com) whose pages may open the live WebSocket; default: same origin only", func(v string) error {
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				cfg.Live.AllowedOrigins = append(cfg.Live.AllowedOrigins, o)
			}
		}
		return nil
	})
	fs.IntVar(&cfg.Live.MaxClients, "ws-max-clients", cfg.Live.MaxClients, "most concurrent live WebSocket clients")
	fs.DurationVar(&cfg.Live.IdleTimeout, "ws-idle-timeout", cfg.Live.IdleTimeout, "close a live client that reads nothing for this long")
	fs.Uint64Var(&cfg.Live.Alerts.BandwidthBits, "alert-bandwidth-bps", cfg.Live.Alerts.BandwidthBits, "raise a high-bandwidth alert above this ingest rate, in bits per second (0: off)")
	fs.Float64Var(&cfg.Live.Alerts.CPUPercent, "alert-cpu", cfg.Live.Alerts.CPUPercent, "raise an alert when a sensor uses more CPU than this, in percent of one core")
	showVersion := fs.Bool("version", false, "print the version and exit")
	check := fs.Bool("check", false, "validate the configuration and exit")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	printConfig := fs.Bool("print-config", false, "print the effective configuration (YAML) and exit")
	fs.String("config", "", "YAML file of settings named like the flags (precedence: flags > NETWATCH_* environment > file > defaults)")
	if err := flagconfig.Parse(fs, args, flagconfig.Options{ConfigFlag: "config", Aliases: []flagconfig.Alias{
		{Env: "NETWATCH_AUTH_TOKEN", Flag: "api-token"},
		{Env: "NETWATCH_PORT", Flag: "http-listen", Convert: func(v string) (string, error) {
			if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
				return "", fmt.Errorf("%q is not a port number (1-65535)", v)
			}
			return net.JoinHostPort("127.0.0.1", v), nil
		}},
	}}); err != nil {
		var bad *flagconfig.SettingError
		if errors.As(err, &bad) {
			fmt.Fprintf(stderr, "netwatch-collector: %v\n", err)
		}
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if v := os.Getenv("NETWATCH_AUTH_ENABLED"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			fmt.Fprintf(stderr, "netwatch-collector: environment NETWATCH_AUTH_ENABLED: %q is not true or false\n", v)
			return 2
		}
		if on && cfg.AuthToken == "" && *tokenFile == "" {
			fmt.Fprintln(stderr, "netwatch-collector: api-token: NETWATCH_AUTH_ENABLED is true but no token is set (--api-token, NETWATCH_AUTH_TOKEN or --api-token-file)")
			return 2
		}
	}
	if *printConfig {
		fmt.Fprint(stdout, flagconfig.Print(fs))
		return 0
	}
	if *showVersion {
		fmt.Fprintln(stdout, "netwatch-collector", version)
		return 0
	}
	if *tokenFile != "" {
		if cfg.AuthToken != "" {
			fmt.Fprintln(stderr, "netwatch-collector: api-token-file: give either --api-token (or NETWATCH_AUTH_TOKEN) or --api-token-file")
			return 2
		}
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "netwatch-collector: api-token-file: %v\n", err)
			return 2
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if cfg.AuthToken = strings.TrimSpace(line); cfg.AuthToken == "" {
			fmt.Fprintf(stderr, "netwatch-collector: api-token-file: %s holds no token on its first line\n", *tokenFile)
			return 2
		}
	}
	for _, o := range strings.Split(*corsOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.CORSOrigins = append(cfg.CORSOrigins, o)
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "netwatch-collector: log-level: %q is not one of debug, info, warn, error\n", *logLevel)
		return 2
	}
	var log *slog.Logger
	switch *logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	case "json":
		log = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	default:
		fmt.Fprintf(stderr, "netwatch-collector: log-format: %q is not one of text, json\n", *logFormat)
		return 2
	}
	c, err := app.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "netwatch-collector: %v\n", err)
		return 2
	}
	if *check {
		fmt.Fprintln(stdout, "configuration ok")
		return 0
	}
	if err := c.Start(); err != nil {
		fmt.Fprintf(stderr, "netwatch-collector: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Stop(sctx); err != nil {
		log.Error("stop", "err", err)
		return 1
	}
	return 0
}
