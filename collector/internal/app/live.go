package app

import (
	"net/http"
	"time"

	"netwatch.dev/collector/internal/live"
)

// newLive builds the live push (GET /api/v1/ws); it shares the API's token.
func newLive(c *Collector) (*live.Hub, error) {
	cfg := c.cfg.Live
	cfg.Token = c.cfg.AuthToken
	return live.New(cfg, live.Deps{Query: c.query, Store: c.store, Log: c.log, Now: time.Now})
}

// withLive routes GET /api/v1/ws to the live push, everything else to next. The
// hub checks origin and token itself: a browser cannot put a token in a WebSocket's
// headers (see live.Subprotocol).
func (c *Collector) withLive(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/ws", c.live)
	mux.Handle("/", next)
	return mux
}
