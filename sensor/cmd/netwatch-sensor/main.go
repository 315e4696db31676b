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

	"netwatch.dev/common/flagconfig"
	"netwatch.dev/common/logging"
	"netwatch.dev/sensor/internal/capture"
	"netwatch.dev/sensor/internal/export"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/pcapfile"
	"netwatch.dev/sensor/internal/pipeline"
)

// version is stamped by the build (-ldflags "-X main.version=...").
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2 // bad flags or configuration, or missing privilege
	// exitUndelivered: the sensor stopped (end of --read, SIGTERM, SIGINT) with data
	// the collector does not have: batches it never acknowledged (the spool is in
	// memory, so they end with the process) or batches dropped from a full spool.
	exitUndelivered = 3
)

// config is everything the command line sets: the pipeline's configuration
// (--read, --output, --speed, --metrics-listen, the capture, flow table and export
// settings) and the flags that fill several of its fields or none.
type config struct {
	pipeline.Config
	Interface string
	LogLevel  string
	LogFormat string
	// metricsExplicit: --metrics-listen was given (offline mode serves metrics only then).
	metricsExplicit bool
	// ringRest is what --ring-size has beyond whole blocks (must be 0).
	ringRest int
	// settings say where each value came from (for errors).
	settings *flagconfig.Settings
}

// pipeline is the configuration of the pipeline the run builds.
func (c *config) pipeline() pipeline.Config {
	pc := c.Config
	if c.Read != "" && !c.metricsExplicit {
		pc.MetricsListen = "" // offline, metrics are served only when asked for
	}
	return pc
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
	lv, _ := logging.ParseLevel(cfg.LogLevel) // checked by parseFlags
	log, level := logging.New(stderr, lv, cfg.LogFormat)
	ctx = watchReloads(ctx, args, cfg, log, level)

	p, err := pipeline.New(cfg.pipeline(), log, stdout)
	if err == nil {
		attachExporter(ctx, p.Exporter())
		err = p.Run(ctx)
	}
	err = cfg.explain(err)
	var bad *flagconfig.SettingError
	var undelivered *pipeline.UndeliveredError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &undelivered):
		fmt.Fprintf(stderr, "netwatch-sensor: %v\n", err)
		return exitUndelivered
	case errors.Is(err, capture.ErrPermission):
		fmt.Fprintln(stderr, capture.ErrPermission.Error())
		return exitUsage
	case errors.As(err, &bad), errors.Is(err, capture.ErrNoInterface), errors.Is(err, capture.ErrConfig), errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "netwatch-sensor: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "netwatch-sensor: %v\n", err)
		return exitFailure
	}
}

var errUsage = errors.New("usage")

// fieldFlags maps the fields of the components' configurations (as the config
// struct holds them) to the flags that set them: the errors of their Check methods
// and constructors name fields (flagconfig.FieldError), the user is told the flag.
var fieldFlags = map[string]string{
	"Read":      "read",
	"LogLevel":  "log-level",
	"LogFormat": "log-format",

	"Capture.Interface":    "interface",
	"Capture.BlockSize":    "ring-block-size",
	"Capture.NumBlocks":    "ring-size",
	"Capture.FrameSize":    "ring-frame-size",
	"Capture.BlockTimeout": "ring-block-timeout",
	"Capture.Promisc":      "promisc",
	"Capture.Filter":       "bpf",
	"Capture.Workers":      "fanout",

	"Flow.IdleTimeout":   "idle-timeout",
	"Flow.ActiveTimeout": "active-timeout",
	"Flow.MaxFlows":      "max-flows",

	"Export.Collector":  "collector",
	"Export.SensorID":   "sensor-id",
	"Export.Interval":   "export-interval",
	"Export.SpoolBytes": "spool-size",
	"Export.CAFile":     "ca",
	"Export.CertFile":   "tls-cert",
	"Export.KeyFile":    "tls-key",
	"Export.ServerName": "tls-server-name",
	"Export.Insecure":   "insecure",
	"Export.Token":      "token",
}

// explain turns an error about a component's field into one naming the flag, its
// value and where the value came from.
func (c *config) explain(err error) error {
	if c.settings == nil {
		return err
	}
	return c.settings.Explain(err, fieldFlags)
}

const usageHeader = `Usage: netwatch-sensor (--interface IF | --read FILE|-) (--collector HOST:PORT | --output jsonl) [flags]

Captures packets on IF (AF_PACKET, needs CAP_NET_RAW) or reads a pcap/pcapng file
(- for standard input, e.g. tcpdump -w - | netwatch-sensor --read - ...), aggregates
flows and streams them to a collector or prints them as JSON lines.

Every flag can also be given as the environment variable NETWATCH_<FLAG> (upper case,
'-' as '_', e.g. NETWATCH_RING_SIZE) or as a field of the --config YAML file.
Precedence: flags > environment > file > defaults.

Exit status: 0 done, everything delivered; 1 failure (e.g. a broken capture file);
2 bad flags or configuration, or missing privilege; 3 undelivered data: the sensor
stopped (end of --read, SIGTERM, SIGINT) while the collector lacked batches, never
acknowledged or dropped from a full spool (the spool is in memory: they are lost),
and it says how many (batches, flow updates, packets, bytes). At the end of --read
the sensor waits for every acknowledgement; after a signal it waits at most 5 s.

Flags:`

// parseFlags returns code >= 0 when the program should exit with it right away.
func parseFlags(args []string, stdout, stderr io.Writer) (cfg config, code int, err error) {
	cfg.Capture = capture.DefaultConfig("")
	cfg.Flow = flow.DefaultConfig()
	cfg.Export = export.DefaultConfig()
	hostname, _ := os.Hostname()
	cfg.Export.Hostname, cfg.Export.Version = hostname, version
	fs := flag.NewFlagSet("netwatch-sensor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Interface, "interface", "", "capture on this `interface`")
	fs.StringVar(&cfg.Read, "read", "", "read a pcap or pcapng `file` instead of capturing (- for standard input)")
	fs.StringVar(&cfg.Export.Collector, "collector", "", "stream flow deltas to the collector at `host:port`")
	fs.StringVar(&cfg.Output, "output", "", "`format` of the flows printed on stdout: jsonl (JSON lines)")
	speed := fs.String("speed", "max", "replay `pace` of --read: max (as fast as possible), 1x (the capture's own timing) or Nx")
	fs.BoolVar(&cfg.Loop, "loop", false, "repeat the --read file forever (not standard input)")
	fs.BoolVar(&cfg.RebaseTime, "rebase-time", false, "shift --read timestamps so the replay starts now")
	fs.StringVar(&cfg.Export.SensorID, "sensor-id", hostname, "this sensor's `id`, unique among the collector's sensors")
	fs.DurationVar(&cfg.Export.Interval, "export-interval", time.Second, "how often flow deltas are exported (100ms to 1m)")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", "127.0.0.1:9100", "Prometheus /metrics `address` (empty: off; offline only when given)")
	spool := fs.String("spool-size", "64MiB", "`size` of the memory for batches the collector has not acknowledged yet; the oldest are dropped (and counted) beyond it")
	fs.StringVar(&cfg.Export.CAFile, "ca", "", "CA certificate (PEM `file`) to verify the collector; turns TLS on")
	fs.StringVar(&cfg.Export.CertFile, "tls-cert", "", "client certificate (PEM `file`) for mutual TLS")
	fs.StringVar(&cfg.Export.KeyFile, "tls-key", "", "client key (PEM `file`) for mutual TLS")
	fs.StringVar(&cfg.Export.ServerName, "tls-server-name", "", "`name` expected in the collector's certificate (empty: the host of --collector)")
	fs.BoolVar(&cfg.Export.Insecure, "insecure", false, "allow plaintext to a collector that is not on loopback")
	fs.StringVar(&cfg.Export.Token, "token", "", "bearer `token` for the collector (also NETWATCH_SENSOR_TOKEN)")
	fs.StringVar(&cfg.Capture.Filter, "bpf", "", "capture filter: a tcpdump-syntax `expression`, compiled to BPF and run in the kernel (with --read: on each frame of the file)")
	fs.BoolVar(&cfg.Capture.Promisc, "promisc", cfg.Capture.Promisc, "put the interface in promiscuous mode")
	fs.IntVar(&cfg.Capture.Workers, "fanout", cfg.Capture.Workers, "capture workers (PACKET_FANOUT hash), each with its own ring and flow table")
	ringSize := fs.String("ring-size", "16MiB", "ring memory `size` per worker (also NETWATCH_RING_BUFFER_SIZE), split into --ring-block-size blocks")
	blockSize := fs.String("ring-block-size", "1MiB", "ring block `size` (power of two, multiple of the page size)")
	fs.IntVar(&cfg.Capture.FrameSize, "ring-frame-size", cfg.Capture.FrameSize, "ring frame size in `bytes` (multiple of 16)")
	fs.DurationVar(&cfg.Capture.BlockTimeout, "ring-block-timeout", cfg.Capture.BlockTimeout, "hand a partly filled block to the sensor after this long")
	fs.DurationVar(&cfg.Flow.IdleTimeout, "idle-timeout", cfg.Flow.IdleTimeout, "end a flow after this long without packets")
	fs.DurationVar(&cfg.Flow.ActiveTimeout, "active-timeout", cfg.Flow.ActiveTimeout, "export a long flow as an interim record after this long")
	cidSeed := fs.String("community-id-seed", "0", "`seed` of the flows' Community ID hash, 0 to 65535 (sensors and tools whose IDs are compared must use the same); not reloadable: a change needs a restart")
	maxFlows := fs.String("max-flows", strconv.Itoa(cfg.Flow.MaxFlows), "flow table capacity (`flows`); beyond it a new flow evicts the longest idle of 8 sampled flows (counted)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	check := fs.Bool("check", false, "check the configuration as the real run would (files, interface, addresses) and exit")
	printConfig := fs.Bool("print-config", false, "print the effective configuration (YAML, accepted back by --config) and exit")
	fs.String("config", "", "YAML `file` of settings named like the flags")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "log `format`: text or json")
	set, err := flagconfig.Parse(fs, args, flagconfig.Options{ConfigFlag: "config",
		Commands: []string{"version", "check", "print-config"},
		Aliases: []flagconfig.Alias{
			{Env: "NETWATCH_RING_BUFFER_SIZE", Flag: "ring-size"},
			{Env: "NETWATCH_SENSOR_TOKEN", Flag: "token"},
			{Env: "NETWATCH_METRICS_INTERVAL", Flag: "export-interval"},
		}})
	cfg.settings = set
	if errors.Is(err, flag.ErrHelp) {
		flagconfig.Usage(stdout, fs, usageHeader)
		return cfg, exitOK, nil
	}
	if err != nil {
		return cfg, exitUsage, err
	}
	if *showVersion {
		fmt.Fprintln(stdout, "netwatch-sensor", version)
		return cfg, exitOK, nil
	}
	if *printConfig {
		// What the settings are, valid or not: --check says what is wrong.
		fmt.Fprint(stdout, set.Print())
		return cfg, exitOK, nil
	}
	cfg.metricsExplicit = set.Source("metrics-listen") != flagconfig.FromDefault
	if fs.NArg() > 0 {
		return cfg, exitUsage, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if cfg.Speed, err = parseSpeed(*speed); err != nil {
		return cfg, exitUsage, set.Error("speed", err)
	}
	ring, err := parseSize(*ringSize)
	if err != nil {
		return cfg, exitUsage, set.Error("ring-size", err)
	}
	if cfg.Capture.BlockSize, err = parseSize(*blockSize); err != nil {
		return cfg, exitUsage, set.Error("ring-block-size", err)
	}
	if cfg.Capture.BlockSize > 0 {
		cfg.Capture.NumBlocks = ring / cfg.Capture.BlockSize
		cfg.ringRest = ring % cfg.Capture.BlockSize
	}
	spoolBytes, err := parseSize(*spool)
	if err != nil {
		return cfg, exitUsage, set.Error("spool-size", err)
	}
	cfg.Export.SpoolBytes = int64(spoolBytes)
	if cfg.Flow.MaxFlows, err = strconv.Atoi(*maxFlows); err != nil {
		return cfg, exitUsage, set.Errorf("max-flows", "not a whole number")
	}
	seed, err := strconv.ParseUint(*cidSeed, 10, 16)
	if err != nil {
		return cfg, exitUsage, set.Errorf("community-id-seed", "not a whole number from 0 to 65535")
	}
	cfg.CommunityIDSeed = uint16(seed)
	cfg.Capture.Interface = cfg.Interface
	cfg.Export.Interface = cfg.Interface
	if cfg.Read != "" {
		cfg.Export.Interface = "file:" + filepath.Base(cfg.Read)
		if cfg.Read == "-" {
			cfg.Export.Interface = "stdin"
		}
	}
	if err := cfg.check(); err != nil {
		return cfg, exitUsage, cfg.explain(err)
	}
	if *check {
		if err := cfg.explain(preflight(cfg)); err != nil {
			if errors.Is(err, capture.ErrPermission) {
				return cfg, exitUsage, errors.New(capture.ErrPermission.Error())
			}
			return cfg, exitUsage, err
		}
		fmt.Fprintln(stdout, "configuration ok")
		return cfg, exitOK, nil
	}
	return cfg, -1, nil
}

// check validates the settings (what needs no file, device or network).
func (c *config) check() error {
	s := c.settings
	switch {
	case c.Interface == "" && c.Read == "":
		return s.Errorf("interface", "give --interface IF to capture or --read FILE to read a capture")
	case c.Interface != "" && c.Read != "":
		return s.Errorf("read", "--interface and --read exclude each other")
	case c.Output != "" && c.Output != "jsonl":
		return s.Errorf("output", "%q is not supported (use jsonl)", c.Output)
	case c.Export.Collector == "" && c.Output == "":
		return s.Errorf("collector", "give --collector HOST:PORT or --output jsonl")
	case c.Read == "" && (c.Loop || c.RebaseTime || c.Speed != 0):
		for _, name := range []string{"loop", "rebase-time", "speed"} {
			if s.Source(name) != flagconfig.FromDefault {
				return s.Errorf(name, "--speed, --loop and --rebase-time apply to --read only")
			}
		}
		return s.Errorf("speed", "--speed, --loop and --rebase-time apply to --read only")
	case c.Read == "-" && c.Loop:
		return s.Errorf("loop", "--loop reads the file again at its end, which standard input (--read -) cannot")
	case c.Export.SensorID == "":
		return s.Errorf("sensor-id", "must not be empty")
	case c.Export.Interval < 100*time.Millisecond || c.Export.Interval > time.Minute:
		return s.Errorf("export-interval", "%v is outside [100ms, 1m]", c.Export.Interval)
	}
	if c.MetricsListen != "" {
		if err := flagconfig.CheckListen(c.MetricsListen); err != nil {
			return s.Error("metrics-listen", err)
		}
	}
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		return &flagconfig.FieldError{Field: "LogLevel", Err: err}
	}
	if err := logging.CheckFormat(c.LogFormat); err != nil {
		return &flagconfig.FieldError{Field: "LogFormat", Err: err}
	}
	if err := c.Flow.Check(); err != nil {
		return flagconfig.Under("Flow", err)
	}
	if c.Export.Collector != "" {
		if err := c.Export.Check(); err != nil {
			return flagconfig.Under("Export", err)
		}
	}
	if c.Read == "" {
		if err := c.Capture.Check(); err != nil {
			return flagconfig.Under("Capture", err)
		}
		if c.ringRest != 0 {
			return s.Errorf("ring-size", "is not a whole number of --ring-block-size blocks (%d bytes each)", c.Capture.BlockSize)
		}
	}
	if _, err := pcapfile.NewFilter(c.Capture.Filter); err != nil {
		return s.Error("bpf", err)
	}
	return nil
}

// preflight builds what the run builds (pipeline.New: the capture file opens and
// is a capture, or the interface exists and packet sockets may be opened; the TLS
// files load; the flow tables are allocated) and releases it again without
// starting: nothing is captured, read, connected or listened on. Listen addresses
// are only parsed (check): binding them would fail while the sensor being
// reconfigured still runs.
func preflight(cfg config) error {
	p, err := pipeline.New(cfg.pipeline(), slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		return err
	}
	return p.Close()
}

// parseSpeed reads "max", "1x", "2.5x".
func parseSpeed(s string) (float64, error) {
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "x"), 64)
	if err != nil || !strings.HasSuffix(s, "x") || v <= 0 || v > 1e6 {
		return 0, errors.New("not max or Nx (e.g. 1x, 10x)")
	}
	return v, nil
}

// parseSize reads "16MiB", "1MiB", "4096", "64KiB".
func parseSize(s string) (int, error) {
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
		return 0, errors.New("not a size (e.g. 16MiB, 64KiB, 4096)")
	}
	return v * mult, nil
}
