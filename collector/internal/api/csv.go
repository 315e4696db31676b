package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
)

// FlowStreamer streams the view of every flow a ListFlowsRequest selects
// (query.Service).
type FlowStreamer interface {
	StreamFlows(req *netwatchv1.ListFlowsRequest, chunk int, fn func([]restjson.Flow) error) error
}

const (
	csvChunk = 1000
	// csvChunkWriteTimeout bounds the write of one chunk: a download may take long
	// as a whole, a client that stops reading may not.
	csvChunkWriteTimeout = 30 * time.Second
)

// csvFlows serves GET /api/v1/flows?format=csv: a download of every matching flow
// (limit and offset are validated but do not apply), in the requested order, with a
// header row of the JSON field names and each value spelled as in the JSON, cells
// that a spreadsheet would run as formulas defused (restjson.AppendFlowCSV). Rows
// are written chunk by chunk as the store hands them out, with no store lock held.
func csvFlows(fs FlowStreamer, eh errorHandler, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := &netwatchv1.ListFlowsRequest{}
		if err := runtime.PopulateQueryParameters(req, r.URL.Query(), utilities.NewDoubleArray(nil)); err != nil {
			eh.handle(r.Context(), nil, nil, w, r, status.Error(codes.InvalidArgument, err.Error()))
			return
		}
		rc := http.NewResponseController(w)
		var (
			buf     []byte
			started bool
		)
		err := fs.StreamFlows(req, csvChunk, func(flows []restjson.Flow) error {
			buf = buf[:0]
			if !started {
				started = true
				startCSV(w, now())
				buf = restjson.AppendFlowCSVHeader(buf)
			}
			_ = rc.SetWriteDeadline(time.Now().Add(csvChunkWriteTimeout))
			for i := range flows {
				buf = restjson.AppendFlowCSV(buf, &flows[i])
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
			return rc.Flush()
		})
		switch {
		case err != nil && !started:
			eh.handle(r.Context(), nil, nil, w, r, err)
		case err != nil:
			// The status is sent; the client sees a truncated download.
			if !errors.Is(err, http.ErrAbortHandler) {
				eh.log.Debug("csv download ended early", "request_id", r.Header.Get(RequestIDHeader), "err", err)
			}
		case !started:
			startCSV(w, now())
			_, _ = w.Write(restjson.AppendFlowCSVHeader(nil))
		}
	})
}

// startCSV sends the headers.
func startCSV(w http.ResponseWriter, at time.Time) {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="netwatch-flows-`+at.UTC().Format("20060102T150405Z")+`.csv"`)
	w.WriteHeader(http.StatusOK)
}
