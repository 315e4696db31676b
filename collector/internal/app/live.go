package app

import (
	"net/http"
	"time"

	"netwatch.dev/collector/internal/live"
)

// newLive builds the live push (GET /api/v1/ws); it shares the API's token, also
// when a reload changes it.
func newLive(c *Collector) (*live.Hub, error) {
	return live.New(c.cfg.Live, live.Deps{Query: c.query, Store: c.store, Log: c.log, Now: time.Now, Token: c.token.Get})
}

// withLive routes /api/v1/ws to the live push, everything else, untouched, to next
// (no ServeMux: its path cleaning and redirects are the API's business). The hub
// checks origin and token itself: a browser cannot put a token in a WebSocket's
// headers (see live.Subprotocol).
func (c *Collector) withLive(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/ws" {
			c.live.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
