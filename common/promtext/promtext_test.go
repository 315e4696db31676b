package promtext

import (
	"bufio"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/promtext/promcheck"
)

func sample(w *Writer) {
	w.Counter("x_total", "Things, \\ counted\non two lines.", 3)
	w.Gauge("y", "A level.", 0)
	w.Family("z_total", "counter", "By kind.")
	w.Sample("z_total", Uint(1), Label{"kind", `a"b\c` + "\nd"})
	w.Sample("z_total", Uint(2), Label{"kind", "plain"}, Label{"side", "src"})
	w.Family("up", "gauge", "1 when up.")
	w.Sample("up", Bool(true))
	w.Family("d_seconds", "histogram", "Durations.")
	w.Histogram("d_seconds", []float64{0.5, 1}, []uint64{1, 0, 2}, 7.25, 3, Label{"api", "rest"})
	w.Histogram("d_seconds", []float64{0.5, 1}, []uint64{0, 0, 0}, 0, 0)
}

// TestWriter: the exact text, with HELP and label escaping, cumulative buckets
// and +Inf as the total.
func TestWriter(t *testing.T) {
	srv := httptest.NewServer(Handler(sample))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, ContentType, resp.Header.Get("Content-Type"))
	assert.Equal(t, `# HELP x_total Things, \\ counted\non two lines.
# TYPE x_total counter
x_total 3
# HELP y A level.
# TYPE y gauge
y 0
# HELP z_total By kind.
# TYPE z_total counter
z_total{kind="a\"b\\c\nd"} 1
z_total{kind="plain",side="src"} 2
# HELP up 1 when up.
# TYPE up gauge
up 1
# HELP d_seconds Durations.
# TYPE d_seconds histogram
d_seconds_bucket{api="rest",le="0.5"} 1
d_seconds_bucket{api="rest",le="1"} 1
d_seconds_bucket{api="rest",le="+Inf"} 3
d_seconds_sum{api="rest"} 7.25
d_seconds_count{api="rest"} 3
d_seconds_bucket{le="0.5"} 0
d_seconds_bucket{le="1"} 0
d_seconds_bucket{le="+Inf"} 0
d_seconds_sum 0
d_seconds_count 0
`, string(body))
}

// TestPromtoolAcceptsTheText: Prometheus's own checker parses the text and finds
// nothing to lint.
func TestPromtoolAcceptsTheText(t *testing.T) {
	promcheck.Lint(t, func(w *bufio.Writer) { sample(New(w)) })
}
