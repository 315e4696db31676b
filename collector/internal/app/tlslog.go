package app

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"

	"netwatch.dev/collector/internal/peerlog"
)

// handshakeLogged wraps the gRPC listener's TLS credentials to log the handshakes
// it refuses: grpc-go drops them silently, and a sensor with a wrong --ca or no
// client certificate is otherwise invisible on the collector.
type handshakeLogged struct {
	credentials.TransportCredentials
	log *handshakeLog
}

func (c handshakeLogged) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		c.log.refused(conn.RemoteAddr(), err)
	}
	return out, info, err
}

func (c handshakeLogged) Clone() credentials.TransportCredentials {
	return handshakeLogged{c.TransportCredentials.Clone(), c.log}
}

// handshakeLog writes at most one line per peer IP (and reason) per window; the
// next line of that peer says how many were suppressed in between (peerlog).
type handshakeLog struct{ log *peerlog.Log }

func newHandshakeLog(log *slog.Logger, window time.Duration, now func() time.Time) *handshakeLog {
	return &handshakeLog{peerlog.New(log, window, now)}
}

func (h *handshakeLog) refused(addr net.Addr, err error) {
	reason, quiet := handshakeReason(err)
	level := slog.LevelWarn
	if quiet { // a port probe or a client gone: not a misconfiguration
		level = slog.LevelDebug
	}
	h.log.Refused(level, addr.String(), "refused TLS handshake", reason, "err", err.Error())
}

// handshakeReason names why a server handshake failed, with the likely fix; quiet
// is true for a connection closed or timed out during the handshake.
func handshakeReason(err error) (reason string, quiet bool) {
	var rec tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var op *net.OpError
	switch {
	case errors.As(err, &rec):
		switch {
		case string(rec.RecordHeader[:]) == "PRI *":
			return "plaintext on the TLS port: a gRPC client without TLS (give the sensor --ca)", false
		case strings.Contains(rec.Msg, "does not look like a TLS handshake"):
			return "plaintext on the TLS port: the client does not speak TLS", false
		}
		return "not a TLS record: " + rec.Msg, false
	case strings.Contains(err.Error(), "didn't provide a certificate"):
		// A Go client sends none when its own is not of a CA in --tls-client-ca.
		return "no client certificate: --tls-client-ca requires one signed by it (the sensor's --tls-cert and --tls-key)", false
	case errors.As(err, &unknownCA):
		return "client certificate of an unknown CA: not signed by --tls-client-ca", false
	case errors.As(err, &invalid):
		return "bad client certificate: " + invalid.Error(), false
	case errors.As(err, &op) && op.Op == "remote error":
		return "the client refused this collector's certificate (" + op.Err.Error() + "): is --tls-cert signed by the sensor's --ca, for the name it dials (--tls-server-name)?", false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return "connection closed during the handshake", true
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "handshake timed out", true
	}
	return "TLS handshake failed", false
}
