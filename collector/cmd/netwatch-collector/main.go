// Command netwatch-collector receives flow deltas from sensors, keeps the last hour in
// memory and serves the query API (gRPC and REST), live updates and the dashboard.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"netwatch.dev/collector/internal/app"
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
	fs.StringVar(&cfg.AuthToken, "auth-token", os.Getenv("NETWATCH_AUTH_TOKEN"), "bearer token required by the API (env NETWATCH_AUTH_TOKEN); without it the API stays on loopback")
	fs.DurationVar(&cfg.Retention, "retention", cfg.Retention, "how long flows are kept after their last update")
	fs.IntVar(&cfg.MaxFlows, "max-flows", envInt("NETWATCH_MAX_FLOWS", cfg.MaxFlows), "flows kept at most; the oldest-idle are evicted beyond it (env NETWATCH_MAX_FLOWS)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate of the gRPC listener (turns on TLS)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&cfg.TLSClientCA, "tls-client-ca", "", "PEM CA that sensor and client certificates must be signed by (mTLS)")
	fs.StringVar(&cfg.TLSClientCA, "client-ca", "", "alias of --tls-client-ca")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow plaintext gRPC on a non-loopback --grpc-listen (logs a warning)")
	fs.StringVar(&cfg.SensorTokenFile, "sensor-token-file", "", "file of \"sensor-id token\" lines; every sensor must then present its bearer token")
	fs.IntVar(&cfg.MaxMessageBytes, "max-message-bytes", cfg.MaxMessageBytes, "largest gRPC message accepted, in bytes")
	fs.IntVar(&cfg.MaxSensors, "max-sensors", cfg.MaxSensors, "most sensors the collector keeps in its registry")
	showVersion := fs.Bool("version", false, "print the version and exit")
	check := fs.Bool("check", false, "validate the configuration and exit")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "netwatch-collector", version)
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "netwatch-collector: log-level: %q is not one of debug, info, warn, error\n", *logLevel)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
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

// envInt reads an integer environment variable, or def when unset or not a number
// (a bad value then fails the check of the flag it feeds).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
