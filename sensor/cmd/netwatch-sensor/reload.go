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
	"netwatch.dev/sensor/internal/export"
)

// sighup receives SIGHUP once main has asked for it (its first line: the default
// action would kill the sensor). run in a test receives none.
var sighup = make(chan os.Signal, 1)

// reloader applies a SIGHUP: it reads the settings again (the config file may have
// changed; the command line and the environment cannot) and puts in force what can
// change while capturing: the collector token (--token, NETWATCH_SENSOR_TOKEN) and
// the log level. Everything else needs a restart.
type reloader struct {
	args  []string
	log   *slog.Logger
	level *slog.LevelVar

	mu        sync.Mutex
	exp       *export.Exporter // nil until exporting (and without --collector)
	token     string
	levelName string
}

type reloaderKey struct{}

// watchReloads handles SIGHUP until ctx ends; the returned context carries the
// reloader, for attachExporter.
func watchReloads(ctx context.Context, args []string, cfg config, log *slog.Logger, level *slog.LevelVar) context.Context {
	r := &reloader{args: args, log: log, level: level, token: cfg.Export.Token, levelName: cfg.LogLevel}
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
	var done, same []string
	switch {
	case next.Export.Token == r.token:
		same = append(same, "token")
	case r.exp == nil:
		same = append(same, "token (not exporting)")
	default:
		r.exp.SetToken(next.Export.Token)
		r.token = next.Export.Token
		done = append(done, "token")
	}
	old := r.level.Level()
	if next.LogLevel == r.levelName {
		same = append(same, "log level "+r.levelName)
	} else {
		done = append(done, "log level "+r.levelName+"→"+next.LogLevel)
		r.levelName = next.LogLevel
	}
	r.level.Set(min(old, lv)) // the line shows at either level
	r.log.Info("reloaded: " + list(done) + "; unchanged: " + list(same) + " (other settings need a restart)")
	r.level.Set(lv)
}

func list(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}
