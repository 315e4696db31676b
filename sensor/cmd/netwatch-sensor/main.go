// Command netwatch-sensor captures packets on a span-port interface (AF_PACKET
// TPACKETv3) or reads a pcap/pcapng file, aggregates bidirectional flows and exports
// flow deltas to a collector, or prints the flows as JSON lines.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"netwatch.dev/proto/flagconfig"
	"netwatch.dev/sensor/internal/capture"
	"netwatch.dev/sensor/internal/export"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/pcapfile"
)

// version is stamped by the build (-ldflags "-X main.version=...").
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2 // bad flags or configuration, or missing privilege
)

// config is everything the command line sets.
type config struct {
	Interface      string
	Read           string
	Collector      string
	Output         string
	Speed          float64 // 0: as fast as possible
	Loop           bool
	RebaseTime     bool
	SensorID       string
	ExportInterval time.Duration
	MetricsListen  string
	LogLevel       string
	LogFormat      string
	// metricsExplicit: --metrics-listen was given (offline mode serves metrics only then).
	metricsExplicit bool
	Capture         capture.Config
	Flow            flow.Config
	Export          export.Config
}

func main() {
	signal.Notify(sighup, syscall.SIGHUP) // reload (reload.go), never the default: exit
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it returns the exit code. Cancelling ctx stops capture
// (SIGINT, SIGTERM) and flushes every open flow.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, code, err := parseFlags(args, stdout, stderr)
	if err != nil || code >= 0 {
		if err != nil {
			fmt.Fprintf(stderr, "netwatch-sensor: %v\n", err)
		}
		return max(code, 0)
	}
	log, level, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintf(stderr, "netwatch-sensor: %v\n", err)
		return exitUsage
	}
	ctx = watchReloads(ctx, args, cfg, log, level)

	if cfg.Read != "" {
		err = runOffline(ctx, cfg, stdout, stderr, log)
	} else {
		err = runLive(ctx, cfg, stdout, log)
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, capture.ErrPermission):
		fmt.Fprintln(stderr, capture.ErrPermission.Error())
		return exitUsage
	case errors.Is(err, capture.ErrNoInterface), errors.Is(err, capture.ErrConfig), errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "netwatch-sensor: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "netwatch-sensor: %v\n", err)
		return exitFailure
	}
}

var errUsage = errors.New("usage")

// parseFlags returns code >= 0 when the program should exit with it right away.
func parseFlags(args []string, stdout, stderr io.Writer) (cfg config, code int, err error) {
	cfg.Capture = capture.DefaultConfig("")
	cfg.Flow = flow.DefaultConfig()
	cfg.Export = export.DefaultConfig()
	hostname, _ := os.Hostname()
	cfg.Export.Hostname, cfg.Export.Version = hostname, version
	fs := flag.NewFlagSet("netwatch-sensor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Interface, "interface", "", "capture on this interface")
	fs.StringVar(&cfg.Read, "read", "", "read a pcap or pcapng file instead of capturing")
	fs.StringVar(&cfg.Collector, "collector", "", "stream flow deltas to this collector (host:port)")
	fs.StringVar(&cfg.Output, "output", "", `"jsonl": print flows as JSON lines on stdout`)
	speed := fs.String("speed", "max", "replay pace of --read: max, 1x (the capture's own timing) or Nx")
	fs.BoolVar(&cfg.Loop, "loop", false, "repeat the --read file forever")
	fs.BoolVar(&cfg.RebaseTime, "rebase-time", false, "shift --read timestamps so the replay starts now")
	fs.StringVar(&cfg.SensorID, "sensor-id", hostname, "this sensor's id (default: the hostname)")
	fs.DurationVar(&cfg.ExportInterval, "export-interval", time.Second, "how often flow deltas are exported")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", "127.0.0.1:9100", "Prometheus /metrics address (empty: off)")
	spool := fs.String("spool-size", "64MiB", "memory for batches the collector has not acknowledged yet; the oldest are dropped (and counted) beyond it")
	fs.StringVar(&cfg.Export.CAFile, "ca", "", "CA certificate (PEM) to verify the collector; turns TLS on")
	fs.StringVar(&cfg.Export.CertFile, "tls-cert", "", "client certificate (PEM) for mutual TLS")
	fs.StringVar(&cfg.Export.KeyFile, "tls-key", "", "client key (PEM) for mutual TLS")
	fs.StringVar(&cfg.Export.ServerName, "tls-server-name", "", "name expected in the collector's certificate (default: its host)")
	fs.BoolVar(&cfg.Export.Insecure, "insecure", false, "allow plaintext to a collector that is not on loopback")
	fs.StringVar(&cfg.Export.Token, "token", "", "bearer token for the collector (also NETWATCH_SENSOR_TOKEN)")
	fs.StringVar(&cfg.Capture.Filter, "bpf", "", "capture filter in tcpdump syntax, run in the kernel (with --read: on each frame of the file)")
	fs.BoolVar(&cfg.Capture.Promisc, "promisc", cfg.Capture.Promisc, "put the interface in promiscuous mode")
	fs.IntVar(&cfg.Capture.Workers, "fanout", cfg.Capture.Workers, "capture workers (PACKET_FANOUT hash), each with its own ring and flow table")
	ringSize := fs.String("ring-size", "16MiB", "ring memory per worker (also NETWATCH_RING_BUFFER_SIZE), split into --ring-block-size blocks")
	blockSize := fs.String("ring-block-size", "1MiB", "ring block size (power of two, multiple of the page size)")
	fs.IntVar(&cfg.Capture.FrameSize, "ring-frame-size", cfg.Capture.FrameSize, "ring frame size (multiple of 16)")
	fs.DurationVar(&cfg.Capture.BlockTimeout, "ring-block-timeout", cfg.Capture.BlockTimeout, "hand a partly filled block to the sensor after this long")
	fs.DurationVar(&cfg.Flow.IdleTimeout, "idle-timeout", cfg.Flow.IdleTimeout, "end a flow after this long without packets")
	fs.DurationVar(&cfg.Flow.ActiveTimeout, "active-timeout", cfg.Flow.ActiveTimeout, "export a long flow as an interim record after this long")
	maxFlows := fs.String("max-flows", strconv.Itoa(cfg.Flow.MaxFlows), "flow table capacity; beyond it a new flow evicts the longest idle of 8 sampled flows (counted)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	check := fs.Bool("check", false, "validate the configuration and exit")
	printConfig := fs.Bool("print-config", false, "print the effective configuration (YAML) and exit")
	fs.String("config", "", "YAML file of settings named like the flags (precedence: flags > NETWATCH_* environment > file > defaults)")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "text or json")
	if err := flagconfig.Parse(fs, args, flagconfig.Options{ConfigFlag: "config", Aliases: []flagconfig.Alias{
		{Env: "NETWATCH_RING_BUFFER_SIZE", Flag: "ring-size"},
		{Env: "NETWATCH_SENSOR_TOKEN", Flag: "token"},
		{Env: "NETWATCH_METRICS_INTERVAL", Flag: "export-interval"},
	}}); err != nil {
		var bad *flagconfig.SettingError
		switch {
		case errors.Is(err, flag.ErrHelp):
			return cfg, exitOK, nil
		case errors.As(err, &bad):
			return cfg, exitUsage, err
		}
		return cfg, exitUsage, nil // the flag package has printed the error and the usage
	}
	if *showVersion {
		fmt.Fprintln(stdout, "netwatch-sensor", version)
		return cfg, exitOK, nil
	}
	fs.Visit(func(f *flag.Flag) { cfg.metricsExplicit = cfg.metricsExplicit || f.Name == "metrics-listen" })
	if fs.NArg() > 0 {
		return cfg, exitUsage, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if cfg.Speed, err = parseSpeed(*speed); err != nil {
		return cfg, exitUsage, err
	}
	ring, err := parseSize("ring-size", *ringSize)
	if err != nil {
		return cfg, exitUsage, err
	}
	if cfg.Capture.BlockSize, err = parseSize("ring-block-size", *blockSize); err != nil {
		return cfg, exitUsage, err
	}
	if cfg.Capture.BlockSize > 0 {
		cfg.Capture.NumBlocks = ring / cfg.Capture.BlockSize
	}
	spoolBytes, err := parseSize("spool-size", *spool)
	if err != nil {
		return cfg, exitUsage, err
	}
	cfg.Export.SpoolBytes = int64(spoolBytes)
	if cfg.Flow.MaxFlows, err = strconv.Atoi(*maxFlows); err != nil {
		return cfg, exitUsage, fmt.Errorf("max-flows: %q is not a number", *maxFlows)
	}
	cfg.Capture.Interface = cfg.Interface
	cfg.Export.Collector, cfg.Export.SensorID, cfg.Export.Interval = cfg.Collector, cfg.SensorID, cfg.ExportInterval
	cfg.Export.Interface = cfg.Interface
	if cfg.Read != "" {
		cfg.Export.Interface = "file:" + filepath.Base(cfg.Read)
	}
	if err := cfg.check(); err != nil {
		return cfg, exitUsage, err
	}
	if *printConfig {
		fmt.Fprint(stdout, flagconfig.Print(fs))
		return cfg, exitOK, nil
	}
	if *check {
		fmt.Fprintln(stdout, "configuration ok")
		return cfg, exitOK, nil
	}
	return cfg, -1, nil
}

func (c *config) check() error {
	switch {
	case c.Interface == "" && c.Read == "":
		return fmt.Errorf("interface: give --interface IF to capture or --read FILE to read a capture")
	case c.Interface != "" && c.Read != "":
		return fmt.Errorf("interface: --interface and --read exclude each other")
	case c.Output != "" && c.Output != "jsonl":
		return fmt.Errorf("output: %q is not supported (use jsonl)", c.Output)
	case c.Collector == "" && c.Output == "":
		return fmt.Errorf("collector: give --collector HOST:PORT or --output jsonl")
	case c.Read == "" && (c.Loop || c.RebaseTime || c.Speed != 0):
		return fmt.Errorf("speed: --speed, --loop and --rebase-time apply to --read only")
	case c.SensorID == "":
		return fmt.Errorf("sensor-id: must not be empty")
	case c.ExportInterval < 100*time.Millisecond || c.ExportInterval > time.Minute:
		return fmt.Errorf("export-interval: %v is outside [100ms, 1m]", c.ExportInterval)
	}
	if err := c.Flow.Check(); err != nil {
		return err
	}
	if c.Collector != "" {
		if err := c.Export.Check(); err != nil {
			return err
		}
	}
	if c.Read == "" {
		return c.Capture.Check()
	}
	if _, err := pcapfile.NewFilter(c.Capture.Filter); err != nil {
		return fmt.Errorf("bpf: %w", err)
	}
	return nil
}

// parseSpeed reads "max", "1x", "2.5x".
func parseSpeed(s string) (float64, error) {
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "x"), 64)
	if err != nil || !strings.HasSuffix(s, "x") || v <= 0 || v > 1e6 {
		return 0, fmt.Errorf("speed: %q is not max or Nx (e.g. 1x, 10x)", s)
	}
	return v, nil
}

// parseSize reads "16MiB", "1MiB", "4096", "64KiB".
func parseSize(field, s string) (int, error) {
	mult := 1
	num := s
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.Atoi(num)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%s: %q is not a size (e.g. 16MiB, 4096)", field, s)
	}
	return v * mult, nil
}

// newLogger builds the structured logger: level debug|info|warn|error (in a
// LevelVar, so a reload can change it), format text|json.
func newLogger(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("log-level: %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), lv, nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), lv, nil
	}
	return nil, nil, fmt.Errorf("log-format: %q is not one of text, json", format)
}
