// Package apierror writes the REST API's error body. The API (collector/internal/api)
// and the live push (collector/internal/live, whose handshake refusals are REST
// answers) both use it; it is its own package because the API serves the live push.
package apierror

import (
	"net/http"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
)

// RequestIDHeader carries the request id on requests and responses.
const RequestIDHeader = "X-Request-Id"

// Write answers status with the body
// {"error":{"code","message","details","timestamp","requestId"}}: code is the
// machine-readable name (INVALID_ARGUMENT, UNAUTHENTICATED...), details extra context
// such as {"parameter": "limit"} (nil: {}), timestamp at, and the request id the
// request's RequestIDHeader.
func Write(w http.ResponseWriter, r *http.Request, at time.Time, status int, code, msg string, details map[string]string) {
	body := &netwatchv1.ErrorResponse{Error: &netwatchv1.ErrorDetail{
		Code: code, Message: msg, Details: details,
		Timestamp: timestamppb.New(at), RequestId: r.Header.Get(RequestIDHeader),
	}}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(restjson.Marshal(body))
}
