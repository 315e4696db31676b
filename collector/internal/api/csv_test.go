package api

import (
	"encoding/csv"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
)

type staticFlows []restjson.Flow

func (s staticFlows) StreamFlows(_ *netwatchv1.ListFlowsRequest, _ int, fn func([]restjson.Flow) error) error {
	return fn(s)
}

// download serves flows through the real CSV handler and returns the header row
// and the rows.
func download(t *testing.T, flows ...restjson.Flow) ([]string, [][]string) {
	t.Helper()
	srv := httptest.NewServer(csvFlows(staticFlows(flows), errorHandler{now: time.Now, log: slog.New(slog.DiscardHandler)}, time.Now))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/api/v1/flows?format=csv")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
	rows, err := csv.NewReader(resp.Body).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 1+len(flows))
	return rows[0], rows[1:]
}

// TestCSVCellsThatAreFormulasGetAnApostrophe: a text cell of a download (the sensor
// id is the one a sensor chooses; the flow key, addresses, protocol name and TCP
// flags are spelled by the collector) that begins with = + - @, a tab or a carriage
// return and is not a number is sent with a leading apostrophe, so a spreadsheet
// shows it and does not run it. Numbers, negative ones included, and ordinary
// values are sent as they are.
func TestCSVCellsThatAreFormulasGetAnApostrophe(t *testing.T) {
	hostile := []string{"=1+2", "@SUM(1)", "+1+cmd|' /C calc'!A0", "-2+3", "\t=1", "\r=1", "=HYPERLINK(\"http://x\")", "-", "+", "-Inf", "+NaN", "-0x10", "-1e", "-1.2.3"}
	numbers := []string{"-5", "+7", "-1.5", "-.5", "-2e10", "+3E-2", "-5."}
	plain := []string{"s1", "a=b", "1-2", "", "a,b\nc"}

	flowWith := func(sensor string) restjson.Flow {
		return restjson.Flow{SensorID: sensor, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("fe80::1"),
			Protocol: 6, SrcTCPFlags: 0x1b, FirstSeen: 1e9, LastSeen: 1e9 - 5e6, Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE}
	}
	var flows []restjson.Flow
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
	require.Len(t, col, (&netwatchv1.NetworkFlow{}).ProtoReflect().Descriptor().Fields().Len(), "a column per NetworkFlow field")
	for i, row := range rows {
		assert.Equal(t, want[i], row[col["sensorId"]])
		assert.Equal(t, flows[i].ID(), row[col["flowKey"]])
		// The other columns are spelled as before: a negative duration stays a number.
		assert.Equal(t, "10.0.0.1", row[col["srcIP"]])
		assert.Equal(t, "fe80::1", row[col["dstIP"]])
		assert.Equal(t, "tcp", row[col["protocolName"]])
		assert.Equal(t, "APSF", row[col["srcTcpFlags"]])
		assert.Equal(t, "-5", row[col["duration"]])
		assert.Equal(t, "active", row[col["status"]])
		assert.Equal(t, "1970-01-01T00:00:01Z", row[col["firstSeen"]])
	}
}

// TestCSVOfNoFlowsIsTheHeader: a download that matches nothing is the header row.
func TestCSVOfNoFlowsIsTheHeader(t *testing.T) {
	header, rows := download(t)
	assert.Empty(t, rows)
	assert.Equal(t, "flowKey", header[0])
}

// TestCSVIdentityColumnsComeLast: the community id, server name, application and
// each end's name, AS and country are the last columns, in this order, after the
// columns a download always had; a server name or DNS name that is a formula is
// defused like any other text.
func TestCSVIdentityColumnsComeLast(t *testing.T) {
	f := restjson.Flow{SensorID: "s1", Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("2001:db8::1"), Protocol: 6,
		FirstSeen: 1e9, LastSeen: 2e9, CommunityID: "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", ServerName: "@evil.example",
		Application: "tls", SrcName: "laptop.lan", DstName: "=cmd", SrcASN: 0, SrcASName: "", SrcCountry: "",
		DstASN: 13335, DstASName: "CLOUDFLARENET, INC", DstCountry: "US"}
	header, rows := download(t, f)
	n := len(header)
	require.Greater(t, n, 11)
	assert.Equal(t, "dstTcpFlags", header[n-12], "the columns before stay where they were")
	assert.Equal(t, []string{"communityId", "serverName", "application", "srcName", "dstName", "srcAsn", "srcAsName",
		"srcCountry", "dstAsn", "dstAsName", "dstCountry"}, header[n-11:])
	assert.Equal(t, []string{"1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "'@evil.example", "tls", "laptop.lan", "'=cmd", "0", "", "",
		"13335", "CLOUDFLARENET, INC", "US"}, rows[0][n-11:])
}
