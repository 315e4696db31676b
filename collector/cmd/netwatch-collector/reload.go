package main

import (
	"bytes"
	"io"
	"log/slog"
	"strings"

	"netwatch.dev/collector/internal/app"
	"netwatch.dev/common/reload"
)

// reloader applies a SIGHUP: it reads the settings again (the config file and the
// token files may have changed; the command line and the environment cannot) and
// puts in force what can change while serving: the API token (--api-token,
// --api-token-file, NETWATCH_AUTH_TOKEN), the sensors' token file and the log
// level; and it reloads the GeoIP database files that changed (they are also
// polled; their paths need a restart). Any other changed setting is named as
// needing a restart.
type reloader struct {
	args  []string
	cur   settings
	c     *app.Collector
	log   *slog.Logger
	level *slog.LevelVar
}

// reloadable are the settings reload applies (flag names).
var reloadable = []string{"api-token", "auth-token", "api-token-file", "sensor-token-file", "log-level"}

func (r *reloader) reload() {
	var errs bytes.Buffer
	next, code := parse(r.args, io.Discard, &errs)
	if code >= 0 {
		r.log.Error("reload failed, nothing changed", "err", strings.TrimSpace(strings.TrimPrefix(errs.String(), "netwatch-collector: ")))
		return
	}
	var rep reload.Report
	tokenName := "api token"
	if next.tokenFile != "" {
		tokenName = "api token file"
	}
	if next.cfg.AuthToken == r.cur.cfg.AuthToken {
		rep.Unchanged(tokenName)
	} else if err := r.c.SetAPIToken(next.cfg.AuthToken); err != nil {
		rep.Failed(tokenName + ": " + err.Error())
	} else {
		rep.Applied(tokenName)
		r.cur.cfg.AuthToken, r.cur.tokenFile = next.cfg.AuthToken, next.tokenFile
	}
	switch changed, err := r.c.ReloadSensorTokens(next.cfg.SensorTokenFile); {
	case err != nil:
		rep.Failed(err.Error())
	case changed:
		rep.Applied("sensor token file")
		r.cur.cfg.SensorTokenFile = next.cfg.SensorTokenFile
	default:
		rep.Unchanged("sensor tokens")
	}
	reloaded, unchanged, geoErrs := r.c.ReloadGeoIP()
	for _, what := range reloaded {
		rep.Applied(what)
	}
	for _, what := range unchanged {
		rep.Unchanged(what)
	}
	for _, err := range geoErrs {
		rep.Failed(err.Error())
	}
	rep.LogLevel(levelName(r.cur.logLevel), levelName(next.logLevel))
	r.cur.logLevel = next.logLevel
	rep.RestartNeeded(r.cur.effective, next.effective, reloadable...)
	rep.Log(r.log, r.level, r.cur.logLevel)
}

func levelName(l slog.Level) string { return strings.ToLower(l.String()) }
