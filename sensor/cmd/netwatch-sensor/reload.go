package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"netwatch.dev/common/logging"
	"netwatch.dev/common/reload"
	"netwatch.dev/sensor/internal/export"
)

// sighup receives SIGHUP once main has asked for it (its first line: the default
// action would kill the sensor). run in a test receives none.
var sighup = make(chan os.Signal, 1)

// reloader applies a SIGHUP: it reads the settings again (the config file may have
// changed; the command line and the environment cannot) and puts in force what can
// change while capturing: the collector token (--token, NETWATCH_SENSOR_TOKEN) and
// the log level. Any other changed setting is named as needing a restart.
type reloader struct {
	args      []string
	log       *slog.Logger
	level     *slog.LevelVar
	effective string // the running settings (flagconfig's Print), what a reload compares

	mu        sync.Mutex
	exp       *export.Exporter // nil until exporting (and without --collector)
	token     string
	levelName string
}

type reloaderKey struct{}

// watchReloads handles SIGHUP until ctx ends; the returned context carries the
// reloader, for attachExporter.
func watchReloads(ctx context.Context, args []string, cfg config, log *slog.Logger, level *slog.LevelVar) context.Context {
	r := &reloader{args: args, log: log, level: level, effective: printed(cfg), token: cfg.Export.Token, levelName: cfg.LogLevel}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-sighup:
				r.reload()
			}
		}
	}()
	return context.WithValue(ctx, reloaderKey{}, r)
}

// attachExporter lets a reload change exp's token.
func attachExporter(ctx context.Context, exp *export.Exporter) {
	if r, ok := ctx.Value(reloaderKey{}).(*reloader); ok && exp != nil {
		r.mu.Lock()
		r.exp = exp
		r.mu.Unlock()
	}
}

func (r *reloader) reload() {
	var errs bytes.Buffer
	next, code, err := parseFlags(r.args, io.Discard, &errs)
	if err != nil || code >= 0 {
		msg := strings.TrimSpace(errs.String())
		if err != nil {
			msg = err.Error()
		}
		r.log.Error("reload failed, nothing changed", "err", msg)
		return
	}
	lv, err := logging.ParseLevel(next.LogLevel)
	if err != nil {
		r.log.Error("reload failed, nothing changed", "err", "log-level: "+next.LogLevel+" is "+err.Error())
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var rep reload.Report
	switch {
	case next.Export.Token == r.token:
		rep.Unchanged("token")
	case r.exp == nil:
		rep.Unchanged("token (not exporting)")
	default:
		r.exp.SetToken(next.Export.Token)
		r.token = next.Export.Token
		rep.Applied("token")
	}
	rep.LogLevel(r.levelName, next.LogLevel)
	r.levelName = next.LogLevel
	rep.RestartNeeded(r.effective, printed(next), reloadable...)
	rep.Log(r.log, r.level, lv)
}

// reloadable are the settings reload applies (flag names).
var reloadable = []string{"token", "log-level"}

// printed is cfg's effective settings, "" when it has none.
func printed(cfg config) string {
	if cfg.settings == nil {
		return ""
	}
	return cfg.settings.Print()
}
