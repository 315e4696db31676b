// Command netwatch-collector receives flow deltas from sensors, keeps the last hour in
// memory and serves the query API (gRPC and REST), live updates and the dashboard.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"netwatch.dev/collector/internal/app"
	"netwatch.dev/common/flagconfig"
	"netwatch.dev/common/logging"
)

// version is stamped by the build (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	// Signals from the start: SIGHUP's default action would kill the collector, and
	// a SIGTERM during a long replay of the durable log must stop it cleanly.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	s, code := parse(args, stdout, stderr)
	if code >= 0 {
		return code
	}
	log, level := logging.New(stderr, s.logLevel, s.logFormat)
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "netwatch-collector: %v\n", s.set.Explain(err, fieldFlags))
		return code
	}
	raiseFileLimit(log)
	c, err := app.New(s.cfg, log)
	if err != nil {
		return fail(2, err)
	}
	if s.check {
		if err := c.Preflight(); err != nil {
			return fail(2, err)
		}
		fmt.Fprintln(stdout, "configuration ok")
		return 0
	}
	r := &reloader{args: args, cur: s, c: c, log: log, level: level}
	startCtx, cancelStart := context.WithCancel(context.Background())
	defer cancelStart()
	started := make(chan error, 1)
	go func() { started <- c.StartContext(startCtx) }()
	stopping := false // a stop was asked for during the replay
	for {
		select {
		case err := <-started:
			started = nil
			if err != nil {
				if stopping {
					log.Info("stopped during the replay of the durable log")
					return 0
				}
				var bad *flagconfig.SettingError
				if err = s.set.Explain(err, fieldFlags); errors.As(err, &bad) {
					return fail(2, err)
				}
				return fail(1, err)
			}
			if !stopping {
				continue
			}
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				r.reload()
				continue
			case stopping:
				log.Warn("exiting without waiting for the replay of the durable log to stop", "signal", sig.String())
				return 1
			case started != nil:
				// The replay only reads (and truncates a torn tail): interrupting it
				// loses nothing. It stops between two records.
				log.Info("stopping: interrupting the replay of the durable log (signal again to exit at once)", "signal", sig.String())
				stopping = true
				cancelStart()
				continue
			}
		}
		break
	}
	log.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Stop(sctx); err != nil {
		log.Error("stop", "err", err)
		return 1
	}
	return 0
}
