package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"netwatch.dev/collector/internal/live"
)

// The collector serves the live push at /api/v1/ws with the API's token, and the
// dashboard with its CSP.
func TestLivePushAndDashboardAreWired(t *testing.T) {
	c := startCollector(t, func(cfg *Config) { cfg.AuthToken = "tok" })
	base := "http://" + c.HTTPAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, resp, err := websocket.Dial(ctx, "ws://"+c.HTTPAddr()+"/api/v1/ws", nil)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	conn, _, err := websocket.Dial(ctx, "ws://"+c.HTTPAddr()+"/api/v1/ws", &websocket.DialOptions{
		Subprotocols: []string{live.Subprotocol, live.TokenSubprotocolPrefix + base64.RawURLEncoding.EncodeToString([]byte("tok"))},
	})
	require.NoError(t, err)
	defer conn.CloseNow()
	_, b, err := conn.Read(ctx)
	require.NoError(t, err)
	var m struct{ Type string }
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, "hello", m.Type)
	for m.Type != "metrics" {
		_, b, err = conn.Read(ctx)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &m))
	}

	r, err := http.Get(base + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, string(body), `src="js/app.js"`)
	require.True(t, strings.HasPrefix(r.Header.Get("Content-Security-Policy"), "default-src 'self'; script-src 'self';"), r.Header.Get("Content-Security-Policy"))
}
