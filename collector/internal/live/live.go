// Package live pushes the collector's state to dashboards over a WebSocket
// (GET /api/v1/ws): metrics, top talkers, sensors and protocol shares every second,
// the flows matching each client's subscription that changed since the last push,
// and alerts as they are raised and cleared.
//
// One hub goroutine computes each push once and hands the encoded bytes to every
// client's bounded queue; a writer goroutine per client drains its queue onto the
// socket. Nothing holds a lock while writing to a socket, so a slow client never
// delays ingest, the hub or another client: when its queue overflows the oldest
// messages are dropped and it is told how many with a "lost" message.
//
// The WebSocket library is github.com/coder/websocket: nhooyr.io/websocket moved
// there when Coder took over its maintenance (same API, same author's design), and
// only the new path gets fixes; it is small, context-based, has no dependencies and
// checks the Origin header on Accept.
package live

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"netwatch.dev/collector/internal/apierror"
	"netwatch.dev/collector/internal/query"
	"netwatch.dev/collector/internal/store"
	"netwatch.dev/common/flagconfig"
)

// Subprotocol is the WebSocket subprotocol of the push stream. A browser, which
// cannot set an Authorization header on a WebSocket, offers its token as a second
// subprotocol TokenSubprotocolPrefix+base64url(token) next to this one; the server
// answers with Subprotocol. (Not a query parameter: URLs end up in logs and history.)
const (
	Subprotocol            = "netwatch.v1"
	TokenSubprotocolPrefix = "netwatch.token."
)

// Config of the live push. Zero values are not defaults: start from DefaultConfig.
type Config struct {
	// Interval between pushes (metrics, top talkers, sensors, flows). Default 1s.
	Interval time.Duration
	// MaxClients caps concurrent WebSocket clients; beyond it the upgrade is refused
	// with 503. Default 64.
	MaxClients int
	// QueueLength is the number of messages waiting for one client; beyond it the
	// oldest are dropped and counted in a "lost" message. Default 64.
	QueueLength int
	// IdleTimeout closes a client that reads nothing for this long: a ping it does not
	// answer, or a write that does not complete. Default 30s.
	IdleTimeout time.Duration
	// AllowedOrigins are host patterns (path.Match, e.g. "*.example.com", or with a
	// scheme "https://ops.example.com") allowed besides the collector's own origin.
	// Empty: same origin only. Requests without an Origin header (not a browser) pass.
	AllowedOrigins []string
	// Token, when set, is required: "Authorization: Bearer TOKEN" or the token
	// subprotocol (see Subprotocol).
	Token string
	// MaxFlowsPerPush caps the flows of one "flows" message (the most recently
	// updated first); the rest are counted in its "more" field. Default 500.
	MaxFlowsPerPush int
	// TopTalkers is the number of hosts in "top_talkers", over TopTalkersWindow
	// (1m to 60m, as the REST API accepts), which is also the window of
	// "protocols". Defaults 10 and 5m.
	TopTalkers       int
	TopTalkersWindow time.Duration
	// ProtocolsEvery is how often the protocol shares are computed (a scan of the
	// store). Default 5s.
	ProtocolsEvery time.Duration
	// Alerts are the alert thresholds.
	Alerts AlertConfig
}

// DefaultConfig is the documented default.
func DefaultConfig() Config {
	return Config{
		Interval: time.Second, MaxClients: 64, QueueLength: 64, IdleTimeout: 30 * time.Second,
		MaxFlowsPerPush: 500, TopTalkers: 10, TopTalkersWindow: 5 * time.Minute, ProtocolsEvery: 5 * time.Second,
		Alerts: DefaultAlertConfig(),
	}
}

// Check explains what is wrong with c; errors name the field (a
// *flagconfig.FieldError).
func (c Config) Check() error {
	switch {
	case c.Interval < time.Millisecond:
		return flagconfig.Fieldf("Interval", "%v is below 1ms", c.Interval)
	case c.MaxClients < 1:
		return flagconfig.Fieldf("MaxClients", "%d must be at least 1", c.MaxClients)
	case c.QueueLength < 4:
		return flagconfig.Fieldf("QueueLength", "%d must be at least 4", c.QueueLength)
	case c.IdleTimeout < 10*time.Millisecond:
		return flagconfig.Fieldf("IdleTimeout", "%v is below 10ms", c.IdleTimeout)
	case c.MaxFlowsPerPush < 1:
		return flagconfig.Fieldf("MaxFlowsPerPush", "%d must be at least 1", c.MaxFlowsPerPush)
	case c.TopTalkers < 1 || c.TopTalkers > query.MaxTopTalkers:
		return flagconfig.Fieldf("TopTalkers", "%d is outside [1, %d]", c.TopTalkers, query.MaxTopTalkers)
	case c.TopTalkersWindow < query.MinWindow || c.TopTalkersWindow > query.MaxWindow:
		return flagconfig.Fieldf("TopTalkersWindow", "%v is outside [%v, %v]", c.TopTalkersWindow, query.MinWindow, query.MaxWindow)
	case c.ProtocolsEvery < c.Interval:
		return flagconfig.Fieldf("ProtocolsEvery", "%v is shorter than the push interval %v", c.ProtocolsEvery, c.Interval)
	}
	for _, p := range c.AllowedOrigins {
		if _, err := path.Match(p, ""); err != nil {
			return flagconfig.Fieldf("AllowedOrigins", "%q is not a valid pattern: %w", p, err)
		}
	}
	return flagconfig.Under("Alerts", c.Alerts.Check())
}

// Deps are what the hub reads.
type Deps struct {
	Query *query.Service
	Store *store.Store
	Log   *slog.Logger
	Now   func() time.Time
	// Token, when set, is the current token and replaces Config.Token: the
	// collector's API token, which a SIGHUP can change.
	Token func() string
}

// Hub serves GET /api/v1/ws and pushes to its clients.
type Hub struct {
	cfg  Config
	deps Deps

	mu      sync.Mutex
	clients map[*client]struct{}
	latest  map[string][]byte // newest message of each periodic type, for new clients
	n       atomic.Int32      // clients admitted (counted before the upgrade)
	stopped bool

	// Owned by the hub goroutine.
	lastScan  int64
	sent      map[store.Key]int64
	nextProto time.Time // next protocol shares due (see tick)
	nextTop   time.Time // next top talkers due
	alerts    *alertState

	kick   chan struct{} // a client arrived: push now rather than at the next tick
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks cfg and builds the hub; it starts nothing.
func New(cfg Config, d Deps) (*Hub, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if d.Query == nil || d.Store == nil {
		return nil, errors.New("live: needs the query service and the store")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Hub{
		cfg: cfg, deps: d, clients: map[*client]struct{}{}, latest: map[string][]byte{},
		alerts: newAlertState(cfg.Alerts), kick: make(chan struct{}, 1),
	}, nil
}

// Start starts the hub goroutine.
func (h *Hub) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(h.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				h.tick(h.deps.Now())
			case <-h.kick:
				h.tick(h.deps.Now())
				t.Reset(h.cfg.Interval)
			}
		}
	}()
}

// Stop stops the hub, closes every client (1001 going away) and waits for them.
func (h *Hub) Stop() {
	if h.cancel != nil {
		h.cancel()
	}
	h.mu.Lock()
	h.stopped = true
	cl := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		cl = append(cl, c)
	}
	h.mu.Unlock()
	for _, c := range cl {
		c.shutdown(websocket.StatusGoingAway, "collector stopping")
	}
	h.wg.Wait()
}

// Clients is the number of connected clients.
func (h *Hub) Clients() int { return int(h.n.Load()) }

// ServeHTTP upgrades GET /api/v1/ws. Refusals, in order: not a GET (405), not a
// WebSocket handshake (426), a foreign Origin (403), a missing or wrong token (401),
// too many clients (503).
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		h.writeError(w, r, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", r.Method+" is not allowed on "+r.URL.Path)
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		w.Header().Set("Upgrade", "websocket")
		h.writeError(w, r, http.StatusUpgradeRequired, "UPGRADE_REQUIRED", r.URL.Path+" is a WebSocket: open it with new WebSocket(...)")
		return
	}
	if err := h.checkOrigin(r); err != nil {
		h.writeError(w, r, http.StatusForbidden, "PERMISSION_DENIED", err.Error())
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="netwatch"`)
		h.writeError(w, r, http.StatusUnauthorized, "UNAUTHENTICATED", "a valid bearer token is required (Authorization header or the "+TokenSubprotocolPrefix+" subprotocol)")
		return
	}
	if int(h.n.Add(1)) > h.cfg.MaxClients {
		h.n.Add(-1)
		w.Header().Set("Retry-After", "5")
		h.writeError(w, r, http.StatusServiceUnavailable, "UNAVAILABLE", fmt.Sprintf("too many live clients (at most %d)", h.cfg.MaxClients))
		return
	}
	defer h.n.Add(-1)
	// The server's read and write timeouts were set on the connection for this
	// request. net/http clears them on hijack today but documents that a hijacked
	// connection may keep them (the stream would then die after ReadTimeout): clear
	// them here. The client's idle timeout and per-write deadlines take over.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:   []string{Subprotocol},
		OriginPatterns: h.cfg.AllowedOrigins,
	})
	if err != nil {
		h.deps.Log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := newClient(h, conn, r.RemoteAddr)
	if !h.add(c) {
		conn.Close(websocket.StatusGoingAway, "collector stopping")
		return
	}
	defer h.remove(c)
	select {
	case h.kick <- struct{}{}:
	default:
	}
	c.run()
}

func (h *Hub) add(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	h.clients[c] = struct{}{}
	// A new client starts from the newest state: hello, the periodic messages and
	// the alerts that are active.
	c.enqueue(encodeHello(h.deps.Now(), h.cfg))
	for _, t := range []string{typeMetrics, typeTopTalkers, typeSensors, typeProtocols} {
		if m := h.latest[t]; m != nil {
			c.enqueue(m)
		}
	}
	for _, m := range h.alerts.activeMessages(h.deps.Now()) {
		c.enqueue(m)
	}
	return true
}

func (h *Hub) remove(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

// snapshot is the clients now, copied so the hub fans out without the lock.
func (h *Hub) snapshot() []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		out = append(out, c)
	}
	return out
}

func (h *Hub) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return fmt.Errorf("origin %q is not a URL with a host", origin)
	}
	if strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	for _, p := range h.cfg.AllowedOrigins {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return nil
		}
	}
	return fmt.Errorf("origin %q may not open the live stream of %q (see --allowed-origins)", u.Host, r.Host)
}

func (h *Hub) authorized(r *http.Request) bool {
	tok := h.cfg.Token
	if h.deps.Token != nil {
		tok = h.deps.Token()
	}
	if tok == "" {
		return true
	}
	want := []byte(tok)
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		if subtle.ConstantTimeCompare([]byte(a[7:]), want) == 1 {
			return true
		}
	}
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if !strings.HasPrefix(p, TokenSubprotocolPrefix) {
				continue
			}
			tok, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(p[len(TokenSubprotocolPrefix):], "="))
			if err == nil && subtle.ConstantTimeCompare(tok, want) == 1 {
				return true
			}
		}
	}
	return false
}

// writeError refuses a request with the REST API's error body.
func (h *Hub) writeError(w http.ResponseWriter, r *http.Request, code int, name, msg string) {
	apierror.Write(w, r, h.deps.Now(), code, name, msg, nil)
}
