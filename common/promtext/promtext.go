// Package promtext writes the Prometheus text exposition format (version 0.0.4):
// HELP and TYPE lines, samples with escaped labels, counters, gauges and
// histograms. It is the one writer of both binaries' /metrics, small on purpose:
// the sensor stays lean without a metrics library.
package promtext

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
)

// ContentType is the media type of the text format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves write's output with ContentType.
func Handler(write func(*Writer)) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", ContentType)
		bw := bufio.NewWriter(rw)
		write(New(bw))
		_ = bw.Flush()
	})
}

// Label is one label of a sample; Value is escaped when written.
type Label struct{ Name, Value string }

// Writer writes metric families to a buffered writer; its errors are the
// bufio.Writer's (seen at Flush).
type Writer struct{ w *bufio.Writer }

// New writes to w.
func New(w *bufio.Writer) *Writer { return &Writer{w: w} }

// Family starts the family name: its HELP and TYPE lines (typ: counter, gauge,
// histogram, ...).
func (w *Writer) Family(name, typ, help string) {
	w.w.WriteString("# HELP " + name + " " + helpEscaper.Replace(help) + "\n# TYPE " + name + " " + typ + "\n")
}

// Sample writes one sample line: name{labels} value.
func (w *Writer) Sample(name, value string, labels ...Label) {
	w.w.WriteString(name)
	for i, l := range labels {
		if i == 0 {
			w.w.WriteByte('{')
		} else {
			w.w.WriteByte(',')
		}
		w.w.WriteString(l.Name + `="` + labelEscaper.Replace(l.Value) + `"`)
	}
	if len(labels) > 0 {
		w.w.WriteByte('}')
	}
	w.w.WriteString(" " + value + "\n")
}

// Counter writes a family of one unlabelled counter.
func (w *Writer) Counter(name, help string, v uint64) {
	w.Family(name, "counter", help)
	w.Sample(name, Uint(v))
}

// Gauge writes a family of one unlabelled gauge.
func (w *Writer) Gauge(name, help string, v uint64) {
	w.Family(name, "gauge", help)
	w.Sample(name, Uint(v))
}

// Histogram writes the series of one histogram of a family started with Family:
// a _bucket sample per upper bound (cumulative) and +Inf, then _sum and _count.
// counts holds each bucket's own count (not cumulative), len(bounds)+1 of them,
// the last for values above every bound; count is their total.
func (w *Writer) Histogram(name string, bounds []float64, counts []uint64, sum float64, count uint64, labels ...Label) {
	le := make([]Label, len(labels)+1)
	copy(le, labels)
	le[len(labels)].Name = "le"
	var cum uint64
	for i, ub := range bounds {
		cum += counts[i]
		le[len(labels)].Value = Float(ub)
		w.Sample(name+"_bucket", Uint(cum), le...)
	}
	le[len(labels)].Value = "+Inf"
	w.Sample(name+"_bucket", Uint(count), le...)
	w.Sample(name+"_sum", Float(sum), labels...)
	w.Sample(name+"_count", Uint(count), labels...)
}

// Uint is v as a sample value.
func Uint(v uint64) string { return strconv.FormatUint(v, 10) }

// Float is v as a sample value, as short as exact.
func Float(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Bool is 1 or 0.
func Bool(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)
