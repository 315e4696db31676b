// Package api serves the REST API (grpc-gateway over the query service), with the
// seed's error body, request ids and optional bearer-token authentication.
package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	gw "netwatch.dev/proto/gateway/netwatch/v1"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
)

// RequestIDHeader carries the request id on requests and responses.
const RequestIDHeader = "X-Request-Id"

// Options of the HTTP API.
type Options struct {
	// Token, when set, is required as "Authorization: Bearer TOKEN" on every API
	// call but /api/v1/health.
	Token string
	// Now is the clock for error timestamps.
	Now func() time.Time
	// UI serves everything outside /api/ (the embedded dashboard); nil: 404.
	UI  http.Handler
	Log *slog.Logger
}

// NewHandler builds the HTTP handler for /api/v1 and the UI.
func NewHandler(ctx context.Context, qs netwatchv1.QueryServiceServer, opts Options) (http.Handler, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	eh := errorHandler{now: opts.Now, log: opts.Log}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, restMarshaler{}),
		runtime.WithErrorHandler(eh.handle),
		runtime.WithRoutingErrorHandler(eh.routing),
	)
	if err := gw.RegisterQueryServiceHandlerServer(ctx, mux, qs); err != nil {
		return nil, err
	}
	root := http.NewServeMux()
	root.Handle("/api/", authenticate(opts.Token, eh, mux))
	if opts.UI != nil {
		root.Handle("/", opts.UI)
	}
	return withRequestID(root), nil
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
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

func authenticate(token string, eh errorHandler, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/health" {
			next.ServeHTTP(w, r)
			return
		}
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
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

// handle turns a gRPC status into the seed's error body. InvalidArgument errors carry
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
	body := &netwatchv1.ErrorResponse{Error: &netwatchv1.ErrorDetail{
		Code: name, Message: msg, Details: details,
		Timestamp: timestamppb.New(e.now()), RequestId: r.Header.Get(RequestIDHeader),
	}}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(restjson.Marshal(body))
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
