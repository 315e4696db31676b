package live

import (
	"encoding/json"
	"strconv"
	"time"

	"netwatch.dev/proto/restjson"
)

// Message types, the "type" of every message {type, ts, data}.
const (
	typeHello      = "hello"       // first message: interval_ms, max_flows_per_push
	typeMetrics    = "metrics"     // data: SystemMetrics as GET /api/v1/metrics
	typeTopTalkers = "top_talkers" // data: as GET /api/v1/top-talkers
	typeSensors    = "sensors"     // data: as GET /api/v1/sensors
	typeProtocols  = "protocols"   // data: as GET /api/v1/protocols
	typeFlows      = "flows"       // data: {flows: [NetworkFlow], more}
	typeAlert      = "alert"       // data: Alert
	typeLost       = "lost"        // data: {count}
	typeSubscribed = "subscribed"  // data: {filter} (null: unsubscribed)
	typeError      = "error"       // data: {code, message, field}
)

func appendJSONString(b []byte, s string) []byte { return restjson.AppendString(b, s) }

// envelope is {"type":t,"ts":now,"data":data}.
func envelope(t string, now time.Time, data []byte) []byte {
	b := make([]byte, 0, len(data)+64)
	b = append(b, `{"type":`...)
	b = appendJSONString(b, t)
	b = append(b, `,"ts":`...)
	b = restjson.AppendTime(b, now)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

func encodeLost(now time.Time, n uint64) []byte {
	return envelope(typeLost, now, append(strconv.AppendUint([]byte(`{"count":`), n, 10), '}'))
}

func encodeError(now time.Time, code, field, msg string) []byte {
	b := []byte(`{"code":`)
	b = appendJSONString(b, code)
	b = append(b, `,"field":`...)
	b = appendJSONString(b, field)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	return envelope(typeError, now, append(b, '}'))
}

func encodeSubscribed(now time.Time, filter map[string]json.RawMessage) []byte {
	f, err := json.Marshal(filter)
	if err != nil || filter == nil {
		f = []byte("null")
	}
	return envelope(typeSubscribed, now, append(append([]byte(`{"filter":`), f...), '}'))
}

func encodeHello(now time.Time, cfg Config) []byte {
	b := strconv.AppendInt([]byte(`{"interval_ms":`), cfg.Interval.Milliseconds(), 10)
	b = strconv.AppendInt(append(b, `,"max_flows_per_push":`...), int64(cfg.MaxFlowsPerPush), 10)
	b = strconv.AppendInt(append(b, `,"idle_timeout_ms":`...), cfg.IdleTimeout.Milliseconds(), 10)
	return envelope(typeHello, now, append(b, '}'))
}

func encodeJSON(t string, now time.Time, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte("null")
	}
	return envelope(t, now, b)
}
