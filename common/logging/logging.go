// Package logging builds the structured logger (log/slog) of both binaries from
// their --log-level and --log-format settings.
package logging

import (
	"errors"
	"io"
	"log/slog"
)

// ParseLevel reads a --log-level value: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, errors.New("not one of debug, info, warn, error")
	}
	return l, nil
}

// CheckFormat checks a --log-format value: text or json.
func CheckFormat(s string) error {
	if s != "text" && s != "json" {
		return errors.New("not one of text, json")
	}
	return nil
}

// New builds the logger writing to w at level, in format (checked by CheckFormat;
// anything but "json" is text). The level is a LevelVar so that a reload can change
// it while the logger is in use.
func New(w io.Writer, level slog.Level, format string) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(level)
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), lv
	}
	return slog.New(slog.NewTextHandler(w, opts)), lv
}
