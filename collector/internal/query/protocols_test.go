package query

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"netwatch.dev/collector/internal/api"
	"netwatch.dev/collector/internal/store"
	"netwatch.dev/common/difftest"
	"netwatch.dev/common/oracle"
	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// share is one row of GET /api/v1/protocols as a client reads it.
type share struct {
	Protocol              int
	Name                  string
	Bytes, Packets, Flows uint64
}

type protocolsBody struct {
	Window    string
	Protocols []share
}

// protocolsServer serves the REST API over a store holding the flows of every shared
// capture, received at a clock standing 10 s after the last packet of
// ndpi-alexa-app (five protocols over three minutes); the other captures lie years
// before it, or after it (those count in every window: stamped ahead of the clock).
func protocolsServer(t *testing.T) (string, *clock, []oracle.Stored) {
	t.Helper()
	flows, err := oracle.LoadStored()
	require.NoError(t, err)
	var last time.Time
	for _, f := range flows {
		if f.Sensor == "ndpi-alexa-app" && f.LastSeen.After(last) {
			last = f.LastSeen
		}
	}
	require.False(t, last.IsZero(), "ndpi-alexa-app is among the captures")
	clk := &clock{last.Add(10 * time.Second)}
	st := store.New(store.DefaultConfig())
	for sensor, deltas := range oracle.BySensor(flows) {
		st.Apply(sensor, deltas, clk.t)
	}
	require.Equal(t, len(flows), st.Len())
	h, err := api.NewHandler(context.Background(), New(st, "test", clk.now), api.Options{Now: clk.now})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, clk, flows
}

func getProtocols(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b json.RawMessage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
	return resp.StatusCode, b
}

// expectedProtocols sums, independently of the store, the flows whose last packet is
// at or after now-window by protocol, most bytes first, then by number.
func expectedProtocols(flows []oracle.Stored, now time.Time, window time.Duration) []share {
	from := now.Add(-window)
	sums := map[uint8]*share{}
	for i := range flows {
		f := &flows[i]
		if f.LastSeen.Before(from) {
			continue
		}
		s := sums[f.Protocol]
		if s == nil {
			s = &share{Protocol: int(f.Protocol), Name: flowmeta.ProtocolName(f.Protocol)}
			sums[f.Protocol] = s
		}
		s.Bytes += f.Bytes()
		s.Packets += f.Packets()
		s.Flows++
	}
	out := []share{}
	for _, s := range sums {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b share) int {
		if a.Bytes != b.Bytes {
			return cmpDesc(a.Bytes, b.Bytes)
		}
		return a.Protocol - b.Protocol
	})
	return out
}

func TestProtocolsOverRESTMatchIndependentSums(t *testing.T) {
	base, clk, flows := protocolsServer(t)
	for _, tc := range []struct {
		name, query string
		window      time.Duration
		atLeast     int // protocols the case's data must hold, so it tests something
	}{
		{"default window", "", 5 * time.Minute, 5},
		{"one minute", "?duration=1m", time.Minute, 2},
		{"90 seconds", "?duration=90s", 90 * time.Second, 2},
		{"an hour", "?duration=60m", time.Hour, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := expectedProtocols(flows, clk.t, tc.window)
			require.GreaterOrEqual(t, len(want), tc.atLeast, "the case's data")
			code, b := getProtocols(t, base+"/api/v1/protocols"+tc.query)
			require.Equal(t, http.StatusOK, code, "%s", b)
			var got protocolsBody
			require.NoError(t, json.Unmarshal(b, &got))
			difftest.Equal(t, protocolsBody{formatDuration(tc.window), want}, got)
		})
	}
	// Once the flows were received longer ago than the retention they are left out,
	// though Expire has not run (the captures stamped ahead would still be in the
	// window): an empty list, not null.
	clk.t = clk.t.Add(store.DefaultConfig().Retention + time.Second)
	code, b := getProtocols(t, base+"/api/v1/protocols?duration=5m")
	require.Equal(t, http.StatusOK, code, "%s", b)
	require.JSONEq(t, `{"window":"5m","protocols":[]}`, string(b))
}

func TestProtocolsBadDurationIs400NamingIt(t *testing.T) {
	base, _, _ := protocolsServer(t)
	for _, v := range []string{"5", "soon", "30s", "2h", "-5m"} {
		code, b := getProtocols(t, base+"/api/v1/protocols?duration="+v)
		require.Equal(t, http.StatusBadRequest, code, "duration=%s: %s", v, b)
		var body struct {
			Error struct {
				Code    string
				Message string
				Details map[string]string
			}
		}
		require.NoError(t, json.Unmarshal(b, &body))
		difftest.Equal(t, map[string]string{"parameter": "duration"}, body.Error.Details)
		require.Equal(t, "INVALID_ARGUMENT", body.Error.Code)
		require.Contains(t, body.Error.Message, "duration: ")
	}
	_, err := New(store.New(store.DefaultConfig()), "test", time.Now).ListProtocols(context.Background(), protocolsRequest("1h1s"))
	requireParamError(t, err, "duration")
}

func protocolsRequest(d string) *netwatchv1.ListProtocolsRequest {
	return &netwatchv1.ListProtocolsRequest{Duration: d}
}
