package main

import (
	"bytes"
	"io"
	"log/slog"
	"slices"
	"strings"

	"netwatch.dev/collector/internal/app"
)

// reloader applies a SIGHUP: it reads the settings again (the config file and the
// token files may have changed; the command line and the environment cannot) and
// puts in force what can change while serving: the API token (--api-token,
// --api-token-file, NETWATCH_AUTH_TOKEN), the sensors' token file and the log
// level. Any other changed setting is named as needing a restart.
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
	var done, same, failed []string
	tokenName := "api token"
	if next.tokenFile != "" {
		tokenName = "api token file"
	}
	if next.cfg.AuthToken == r.cur.cfg.AuthToken {
		same = append(same, tokenName)
	} else if err := r.c.SetAPIToken(next.cfg.AuthToken); err != nil {
		failed = append(failed, tokenName+": "+err.Error())
	} else {
		done = append(done, tokenName)
		r.cur.cfg.AuthToken, r.cur.tokenFile = next.cfg.AuthToken, next.tokenFile
	}
	switch changed, err := r.c.ReloadSensorTokens(next.cfg.SensorTokenFile); {
	case err != nil:
		failed = append(failed, err.Error())
	case changed:
		done = append(done, "sensor token file")
		r.cur.cfg.SensorTokenFile = next.cfg.SensorTokenFile
	default:
		same = append(same, "sensor tokens")
	}
	old := r.cur.logLevel
	if next.logLevel == old {
		same = append(same, "log level "+levelName(old))
	} else {
		done = append(done, "log level "+levelName(old)+"→"+levelName(next.logLevel))
		r.cur.logLevel = next.logLevel
	}
	// Log at the more verbose of the two levels, so the line shows either way.
	r.level.Set(min(old, next.logLevel))
	msg := "reloaded: " + list(done) + "; unchanged: " + list(same)
	attrs := []any{}
	if restart := restartNeeded(r.cur.effective, next.effective); len(restart) > 0 {
		attrs = append(attrs, "restart_needed_for", strings.Join(restart, ", "))
	}
	if len(failed) > 0 {
		attrs = append(attrs, "failed", strings.Join(failed, "; "))
		r.log.Error(msg, attrs...)
	} else {
		r.log.Info(msg, attrs...)
	}
	r.level.Set(r.cur.logLevel)
}

func list(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

func levelName(l slog.Level) string { return strings.ToLower(l.String()) }

// restartNeeded names the settings other than the reloadable ones whose effective
// values differ (flagconfig.Print lines "name: value"); values are never logged.
func restartNeeded(before, after string) []string {
	parse := func(s string) map[string]string {
		m := map[string]string{}
		for _, line := range strings.Split(s, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				m[k] = v
			}
		}
		return m
	}
	b, a := parse(before), parse(after)
	var out []string
	for k, v := range a {
		if b[k] != v && !slices.Contains(reloadable, k) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && !slices.Contains(reloadable, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
