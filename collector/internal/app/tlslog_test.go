package app

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRefusedHandshakesAreLoggedOncePerPeerAndWindow: the refused TLS handshakes
// of one peer IP give one line per window; the next line counts the suppressed
// ones. Another peer has its own window.
func TestRefusedHandshakesAreLoggedOncePerPeerAndWindow(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	h := newHandshakeLog(slog.New(slog.NewTextHandler(&buf, nil)), 30*time.Second, func() time.Time { return now })
	plain := tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake", RecordHeader: [5]byte{'P', 'R', 'I', ' ', '*'}}
	a := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}
	b := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 40000}
	for i := range 4 {
		a.Port++
		h.refused(a, plain)
		now = now.Add(time.Second)
		if i == 1 {
			h.refused(b, plain)
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2, buf.String())
	assert.Contains(t, lines[0], "peer=192.0.2.1:40001")
	assert.Contains(t, lines[0], `reason="plaintext on the TLS port: a gRPC client without TLS (give the sensor --ca)"`)
	assert.Contains(t, lines[0], "suppressed=0")
	assert.Contains(t, lines[1], "peer=192.0.2.2:40000")
	now = now.Add(30 * time.Second)
	a.Port++
	h.refused(a, plain)
	assert.Contains(t, buf.String(), "peer=192.0.2.1:40005", "a new window")
	assert.Contains(t, buf.String(), "suppressed=3", "the three refusals between")
}

// TestHandshakeReasons: each way a handshake fails is named, with its fix; a
// connection closed or timed out during it (a port probe) is only a debug line.
func TestHandshakeReasons(t *testing.T) {
	for _, tc := range []struct {
		err   error
		want  string
		quiet bool
	}{
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake", RecordHeader: [5]byte{'P', 'R', 'I', ' ', '*'}}, "a gRPC client without TLS (give the sensor --ca)", false},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake", RecordHeader: [5]byte{'G', 'E', 'T', ' ', '/'}}, "the client does not speak TLS", false},
		{errors.New("tls: client didn't provide a certificate"), "no client certificate", false},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, "client certificate of an unknown CA: not signed by --tls-client-ca", false},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: unknown certificate authority")}, "the client refused this collector's certificate (tls: unknown certificate authority)", false},
		{fmt.Errorf("read: %w", io.EOF), "connection closed during the handshake", true},
		{errors.New("tls: no cipher suite supported by both client and server"), "TLS handshake failed", false},
	} {
		reason, quiet := handshakeReason(tc.err)
		assert.Contains(t, reason, tc.want, "%v", tc.err)
		assert.Equal(t, tc.quiet, quiet, "%v", tc.err)
	}
}
