// Package api serves the REST API (grpc-gateway over the query service, the CSV
// download and the OpenAPI document), with one JSON error body, request ids,
// optional bearer-token authentication, per-client rate limits, CORS and the
// security headers (security.go).
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"netwatch.dev/collector/internal/apierror"
	"netwatch.dev/collector/internal/telemetry"
	gw "netwatch.dev/proto/gateway/netwatch/v1"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/openapi"
)

// RequestIDHeader carries the request id on requests and responses.
const RequestIDHeader = apierror.RequestIDHeader

// Options of the HTTP API.
type Options struct {
	// Token, when set, is required as "Authorization: Bearer TOKEN" on every /api/
	// call but /api/v1/health, and on /metrics.
	Token string
	// Auth, when set, replaces Token: a token that can change while serving.
	Auth *Token
	// Now is the clock for error timestamps and the rate limit.
	Now func() time.Time
	// UI serves everything outside /api/ (the embedded dashboard); nil: 404.
	UI  http.Handler
	Log *slog.Logger
	// RateLimit per client IP on /api/ and /metrics; zero fields: no limit.
	RateLimit RateLimit
	// Limiter, when set, replaces RateLimit: one shared with other APIs.
	Limiter *Limiter
	// CORSOrigins may call the API from their pages; empty: same-origin only.
	CORSOrigins []string
	// Metrics serves /metrics (Prometheus); nil: not served.
	Metrics http.Handler
	// Latency, when set, records the time of every query-service request.
	Latency *telemetry.Latency
	// Ready is what /readyz reports: nil, 200 "ready"; an error, 503 with its text.
	// /healthz answers 200 while the process serves. Both are outside /api/: no
	// token, no rate limit (orchestrators probe them). Nil Ready: always ready.
	Ready func() error
	// Routes are further handlers under /api/ by exact path (e.g. the WebSocket at
	// /api/v1/ws), behind the same CORS, rate limit and token check as the rest.
	Routes map[string]http.Handler
}

// OpenAPIPath serves the generated OpenAPI document (proto/openapi).
const OpenAPIPath = "/api/v1/openapi.json"

// Handler is the collector's HTTP handler: /api/ (gateway, CSV, OpenAPI), /metrics
// and the UI, with request ids, security headers, CORS, rate limits and the token.
type Handler struct {
	http.Handler
	limited atomic.Uint64
}

// RateLimited is the number of requests refused by the rate limit since start.
func (h *Handler) RateLimited() uint64 { return h.limited.Load() }

// NewHandler builds the HTTP handler for /api/v1, /metrics and the UI.
//
// Order, outermost first: request id and security headers (every response), then for
// /api/: CORS (a preflight carries no token), rate limit (before the token check, so
// guessing tokens is rate limited too), token, unknown-parameter check, latency, and
// the endpoint: CSV download, OpenAPI document, extra routes, or the gateway.
func NewHandler(ctx context.Context, qs netwatchv1.QueryServiceServer, opts Options) (*Handler, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	eh := errorHandler{now: opts.Now, log: opts.Log}
	gwmux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, restMarshaler{}),
		runtime.WithErrorHandler(eh.handle),
		runtime.WithRoutingErrorHandler(eh.routing),
	)
	if err := gw.RegisterQueryServiceHandlerServer(ctx, gwmux, qs); err != nil {
		return nil, err
	}
	routes := routeParams()
	var flows http.Handler = gwmux
	if fs, ok := qs.(FlowStreamer); ok {
		csvh := csvFlows(fs, eh, opts.Now)
		flows = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Query().Get("format") == "csv" {
				csvh.ServeHTTP(w, r)
				return
			}
			gwmux.ServeHTTP(w, r)
		})
	}
	api := http.NewServeMux()
	api.Handle("/api/", instrument(opts.Latency, routes, gwmux))
	api.Handle("/api/v1/flows", instrument(opts.Latency, routes, flows))
	api.Handle(OpenAPIPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			eh.routing(r.Context(), nil, nil, w, r, http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.JSON)
	}))
	routes[OpenAPIPath] = nil
	for path, h := range opts.Routes {
		api.Handle(path, h)
	}
	lim := opts.Limiter
	if lim == nil {
		lim = NewLimiter(opts.RateLimit, opts.Now)
	}
	tok := opts.Auth
	if tok == nil {
		tok = NewToken(opts.Token)
	}
	h := &Handler{}
	root := http.NewServeMux()
	root.Handle("/api/", cors(opts.CORSOrigins, eh, rateLimit(lim, &h.limited, eh, authenticate(tok, eh, checkParams(routes, eh, api)))))
	if opts.Metrics != nil {
		root.Handle("/metrics", rateLimit(lim, &h.limited, eh, authenticate(tok, eh, opts.Metrics)))
	}
	root.Handle("/healthz", probe(eh, func() error { return nil }, "ok"))
	ready := opts.Ready
	if ready == nil {
		ready = func() error { return nil }
	}
	root.Handle("/readyz", probe(eh, ready, "ready"))
	if opts.UI != nil {
		root.Handle("/", opts.UI)
	}
	h.Handler = withRequestID(securityHeaders(root))
	return h, nil
}

// probe answers a liveness or readiness probe in plain text: 200 ok when check is
// nil, 503 with its error otherwise. GET and HEAD only.
func probe(eh errorHandler, check func() error, ok string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			eh.routing(r.Context(), nil, nil, w, r, http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := check(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, err.Error()+"\n")
			return
		}
		_, _ = io.WriteString(w, ok+"\n")
	})
}

// instrument records the latency of query-service requests by path (the REST routes;
// anything else under /api/ is "other", so the label set stays bounded). A CSV
// download is its own endpoint.
func instrument(l *telemetry.Latency, routes map[string][]string, next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		next.ServeHTTP(w, r)
		name, ok := route(routes, r.URL.Path)
		if !ok {
			name = "other"
		} else if name == "/api/v1/flows" && r.URL.Query().Get("format") == "csv" {
			name += "?format=csv"
		}
		l.Observe(telemetry.Endpoint{API: "rest", Name: name}, time.Since(start))
	})
}

// RESTEndpoints are the latency series pre-created for the REST API.
func RESTEndpoints() []telemetry.Endpoint {
	var out []telemetry.Endpoint
	for path := range routeParams() {
		out = append(out, telemetry.Endpoint{API: "rest", Name: path})
	}
	return append(out, telemetry.Endpoint{API: "rest", Name: "/api/v1/flows?format=csv"})
}

func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if id == "" || len(id) > 64 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
			r.Header.Set(RequestIDHeader, id)
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r)
	})
}

func authenticate(token *Token, eh errorHandler, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Health stays open: load balancers and orchestrators probe it without
		// credentials, and it says nothing about the traffic.
		if r.URL.Path == "/api/v1/health" {
			next.ServeHTTP(w, r)
			return
		}
		if !token.Accepts(r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="netwatch"`)
			eh.write(w, r, http.StatusUnauthorized, "UNAUTHENTICATED", "a valid bearer token is required", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type errorHandler struct {
	now func() time.Time
	log *slog.Logger
}

// handle turns a gRPC status into the API's error body. InvalidArgument errors carry
// the offending parameter in details.parameter.
func (e errorHandler) handle(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st, ok := status.FromError(err)
	if !ok {
		st = status.New(codes.Unknown, err.Error())
	}
	var details map[string]string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				details = map[string]string{"parameter": v.GetField()}
			}
		}
	}
	code := runtime.HTTPStatusFromCode(st.Code())
	msg := st.Message()
	if code >= 500 && st.Code() != codes.Unimplemented && st.Code() != codes.Unavailable {
		e.log.Error("api request failed", "path", r.URL.Path, "request_id", r.Header.Get(RequestIDHeader), "err", err)
		msg = "internal error" // never leak internals to clients; the log has them
	}
	e.write(w, r, code, codeName(st.Code()), msg, details)
}

func (e errorHandler) routing(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	switch code {
	case http.StatusNotFound:
		e.write(w, r, code, "NOT_FOUND", "no such API endpoint: "+r.URL.Path, nil)
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodGet)
		e.write(w, r, code, "METHOD_NOT_ALLOWED", r.Method+" is not allowed on "+r.URL.Path, nil)
	default:
		e.write(w, r, code, "BAD_REQUEST", http.StatusText(code), nil)
	}
}

func (e errorHandler) write(w http.ResponseWriter, r *http.Request, code int, name, msg string, details map[string]string) {
	apierror.Write(w, r, e.now(), code, name, msg, details)
}

func codeName(c codes.Code) string {
	switch c {
	case codes.InvalidArgument:
		return "INVALID_ARGUMENT"
	case codes.NotFound:
		return "NOT_FOUND"
	case codes.Unauthenticated:
		return "UNAUTHENTICATED"
	case codes.PermissionDenied:
		return "PERMISSION_DENIED"
	case codes.ResourceExhausted:
		return "RESOURCE_EXHAUSTED"
	case codes.Unimplemented:
		return "UNIMPLEMENTED"
	case codes.Unavailable:
		return "UNAVAILABLE"
	case codes.DeadlineExceeded:
		return "DEADLINE_EXCEEDED"
	case codes.Canceled:
		return "CANCELED"
	}
	return "INTERNAL"
}
