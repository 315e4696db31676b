package pipeline

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/proto/flowmeta"
	"netwatch.dev/sensor/internal/flow"
)

// TestShardInspectsPayloads reads a real capture with TLS, HTTP and DNS
// flows: the shard inspects each payload while the reader's buffer holds it
// and the flows' deltas, the final ones included, carry the findings.
func TestShardInspectsPayloads(t *testing.T) {
	cfg := readConfig(t, "ndpi-alexa-app.pcapng")
	type flowApp struct {
		app  flowmeta.App
		name string
	}
	names := map[string]flowApp{} // server name -> what its flows' deltas said
	apps := map[flowmeta.App]int{}
	final := 0
	cfg.Deltas = func(ds []flow.Delta) {
		for i := range ds {
			d := &ds[i]
			apps[d.App]++
			if d.ServerName != "" {
				names[d.ServerName] = flowApp{d.App, d.ServerName}
				if d.Removed() {
					final++
				}
			}
		}
	}
	p, err := New(cfg, discard, io.Discard)
	require.NoError(t, err)
	require.NoError(t, p.Run(context.Background()))
	// Names seen by tshark in this capture: an HTTP Host and TLS SNIs.
	assert.Equal(t, flowApp{flowmeta.AppHTTP, "connectivitycheck.android.com"}, names["connectivitycheck.android.com"])
	assert.Equal(t, flowApp{flowmeta.AppTLS, "pitangui.amazon.com"}, names["pitangui.amazon.com"])
	assert.Equal(t, flowApp{flowmeta.AppTLS, "www.amazon.com"}, names["www.amazon.com"])
	assert.Positive(t, apps[flowmeta.AppDNS])
	assert.Positive(t, final, "final deltas carry the name")
}
