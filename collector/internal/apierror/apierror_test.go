package apierror

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestWriteIsTheDocumentedBody(t *testing.T) {
	for _, tc := range []struct {
		name    string
		details map[string]string
		reqID   string
		want    string
	}{
		{
			name: "a parameter and a request id", details: map[string]string{"parameter": "limit"}, reqID: "r-1",
			want: `{"error":{"code":"INVALID_ARGUMENT","message":"limit: not a number","details":{"parameter":"limit"},"timestamp":"2026-12-02T10:00:00Z","requestId":"r-1"}}`,
		},
		{
			name: "no details, no request id",
			want: `{"error":{"code":"INVALID_ARGUMENT","message":"limit: not a number","details":{},"timestamp":"2026-12-02T10:00:00Z","requestId":""}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/api/v1/flows?limit=x", nil)
			if tc.reqID != "" {
				r.Header.Set(RequestIDHeader, tc.reqID)
			}
			w := httptest.NewRecorder()
			Write(w, r, time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), http.StatusBadRequest, "INVALID_ARGUMENT", "limit: not a number", tc.details)
			assert.Equal(t, http.StatusBadRequest, w.Code)
			assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
			assert.JSONEq(t, tc.want, w.Body.String())
		})
	}
}
