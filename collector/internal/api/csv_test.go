package api

import (
	"encoding/csv"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

type staticFlows []*netwatchv1.NetworkFlow

func (s staticFlows) StreamFlows(_ *netwatchv1.ListFlowsRequest, _ int, fn func([]*netwatchv1.NetworkFlow) error) error {
	return fn(s)
}

// download serves flows through the real CSV handler and returns the header row
// and the rows.
func download(t *testing.T, flows ...*netwatchv1.NetworkFlow) ([]string, [][]string) {
	t.Helper()
	srv := httptest.NewServer(csvFlows(staticFlows(flows), errorHandler{now: time.Now, log: slog.New(slog.DiscardHandler)}, time.Now))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/api/v1/flows?format=csv")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	rows, err := csv.NewReader(resp.Body).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 1+len(flows))
	return rows[0], rows[1:]
}

// TestCSVCellsThatAreFormulasGetAnApostrophe: every text column of a download
// (flow key, addresses, protocol name, sensor, TCP flags...) that begins with
// = + - @, a tab or a carriage return and is not a number is sent with a leading
// apostrophe, so a spreadsheet shows it and does not run it. Numbers, negative
// ones included, and ordinary values are sent as they are.
func TestCSVCellsThatAreFormulasGetAnApostrophe(t *testing.T) {
	hostile := []string{"=1+2", "@SUM(1)", "+1+cmd|' /C calc'!A0", "-2+3", "\t=1", "\r=1", "=HYPERLINK(\"http://x\")", "-", "+", "-Inf", "+NaN", "-0x10", "-1e", "-1.2.3"}
	numbers := []string{"-5", "+7", "-1.5", "-.5", "-2e10", "+3E-2", "-5."}
	plain := []string{"::1", "10.0.0.1", "fe80::1", "tcp", "a=b", "1-2", "SAPF", ""}

	// Every string field of a NetworkFlow, whatever the schema adds later.
	fields := (&netwatchv1.NetworkFlow{}).ProtoReflect().Descriptor().Fields()
	var text []protoreflect.FieldDescriptor
	for i := range fields.Len() {
		if fields.Get(i).Kind() == protoreflect.StringKind {
			text = append(text, fields.Get(i))
		}
	}
	require.GreaterOrEqual(t, len(text), 7, "flow key, src/dst IP, protocol name, sensor, TCP flags")
	flowWith := func(v string) *netwatchv1.NetworkFlow {
		f := &netwatchv1.NetworkFlow{Duration: -5, FirstSeen: timestamppb.New(time.Unix(1, 0)), Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE}
		m := f.ProtoReflect()
		for _, fd := range text {
			m.Set(fd, protoreflect.ValueOfString(v))
		}
		return f
	}
	var flows []*netwatchv1.NetworkFlow
	var want []string
	for _, v := range hostile {
		flows, want = append(flows, flowWith(v)), append(want, "'"+v)
	}
	for _, v := range append(numbers, plain...) {
		flows, want = append(flows, flowWith(v)), append(want, v)
	}
	header, rows := download(t, flows...)
	col := map[string]int{}
	for i, name := range header {
		col[name] = i
	}
	for i, row := range rows {
		for _, fd := range text {
			assert.Equal(t, want[i], row[col[fd.JSONName()]], "column %s", fd.JSONName())
		}
		// The numeric and enum columns are spelled as before: a negative
		// duration stays a number.
		assert.Equal(t, "-5", row[col["duration"]])
		assert.Equal(t, "active", row[col["status"]])
		assert.Equal(t, "1970-01-01T00:00:01Z", row[col["firstSeen"]])
	}
}

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"=1+2": "'=1+2", "@SUM(1)": "'@SUM(1)", "+x": "'+x", "-x": "'-x", "\tx": "'\tx", "\rx": "'\rx",
		"-5": "-5", "+5": "+5", "-5.25": "-5.25", "1e5": "1e5", "::1": "::1", "x=1": "x=1", "": "",
		"-1e+": "'-1e+", "-.": "'-.", "-1e5.5": "'-1e5.5",
	} {
		assert.Equal(t, want, csvCell(in), "%q", in)
	}
}
