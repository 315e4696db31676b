// Package reload is the shape both binaries give a SIGHUP reload: what it put in
// force, what stayed, what failed, and which changed settings need a restart, as
// one log line
//
//	msg="reloaded: token, log level info→debug; unchanged: nothing" restart_needed_for="idle-timeout, bpf"
//
// logged at the more verbose of the old and the new log level, so it shows at
// either. Each binary's reload.go re-reads its settings and applies them.
package reload

import (
	"log/slog"
	"slices"
	"strings"

	"netwatch.dev/common/flagconfig"
)

// Report collects one reload's outcome. The zero value is ready.
type Report struct {
	done, same, failed, restart []string
}

// Applied records a setting the reload put in force.
func (r *Report) Applied(what string) { r.done = append(r.done, what) }

// Unchanged records a reloadable setting that kept its value.
func (r *Report) Unchanged(what string) { r.same = append(r.same, what) }

// Failed records a setting that could not be applied (and was kept): the line is
// logged as an error.
func (r *Report) Failed(what string) { r.failed = append(r.failed, what) }

// LogLevel records the log level: "log level old→next" applied, or "log level old"
// unchanged.
func (r *Report) LogLevel(old, next string) {
	if old == next {
		r.Unchanged("log level " + old)
	} else {
		r.Applied("log level " + old + "→" + next)
	}
}

// RestartNeeded records the settings whose effective values differ between the
// running ones and those read again (outputs of flagconfig's Settings.Print),
// except the reloadable ones (flag names). Values are never logged.
func (r *Report) RestartNeeded(running, reread string, reloadable ...string) {
	for _, name := range flagconfig.Changed(running, reread) {
		if !slices.Contains(reloadable, name) {
			r.restart = append(r.restart, name)
		}
	}
}

// Message is the line's text: "reloaded: ...; unchanged: ...".
func (r *Report) Message() string {
	return "reloaded: " + list(r.done) + "; unchanged: " + list(r.same)
}

// Attrs are the line's attributes: restart_needed_for and failed, when not empty.
func (r *Report) Attrs() []any {
	var attrs []any
	if len(r.restart) > 0 {
		attrs = append(attrs, "restart_needed_for", strings.Join(r.restart, ", "))
	}
	if len(r.failed) > 0 {
		attrs = append(attrs, "failed", strings.Join(r.failed, "; "))
	}
	return attrs
}

// Log writes the report (an error when something failed, info otherwise) at the
// more verbose of the level in force and next, then puts next in force.
func (r *Report) Log(log *slog.Logger, level *slog.LevelVar, next slog.Level) {
	level.Set(min(level.Level(), next))
	if len(r.failed) > 0 {
		log.Error(r.Message(), r.Attrs()...)
	} else {
		log.Info(r.Message(), r.Attrs()...)
	}
	level.Set(next)
}

func list(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}
