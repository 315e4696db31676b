package export

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// probeTimeout bounds the TLS probe of diagnose.
const probeTimeout = 3 * time.Second

// diagnose explains a stream that did not open when the reason is a configuration
// the sensor can fix, or returns "". gRPC reports a sensor and a collector that
// disagree on TLS only as "error reading server preface: EOF" (plaintext to TLS)
// or "first record does not look like a TLS handshake" (TLS to plaintext), so when
// the connection failed diagnose asks the collector directly (probeTLS).
func (e *Exporter) diagnose(ctx context.Context, err error) string {
	if status.Code(err) != codes.Unavailable {
		return ""
	}
	msg := status.Convert(err).Message()
	switch {
	case strings.Contains(msg, "certificate signed by unknown authority"):
		return "the collector's certificate is not signed by --ca (unknown authority): give the CA that signed its --tls-cert"
	case strings.Contains(msg, "certificate required") && e.cfg.CertFile != "":
		// A TLS client sends only a certificate of a CA the server asks for.
		return "the collector requires a client certificate signed by its --tls-client-ca, and --tls-cert is not (so none was sent)"
	case strings.Contains(msg, "certificate required"):
		return "the collector requires a client certificate (mTLS): give --tls-cert and --tls-key"
	case strings.Contains(msg, "remote error: tls: bad certificate"), strings.Contains(msg, "remote error: tls: unknown certificate authority"):
		return "the collector refused this sensor's certificate: --tls-cert is not signed by the collector's --tls-client-ca"
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"):
		return "" // nobody listening: the collector is down, not misconfigured
	}
	speaksTLS, known := probeTLS(ctx, e.cfg.Collector)
	switch {
	case !known:
		return ""
	case speaksTLS && e.cfg.CAFile == "":
		return "the collector speaks TLS: give --ca (the CA certificate that signed the collector's --tls-cert)"
	case !speaksTLS && e.cfg.CAFile != "":
		return "the collector does not speak TLS (plaintext on loopback?): drop --ca, --tls-cert and --tls-key"
	}
	return ""
}

// probeTLS opens a connection to addr and starts a TLS handshake on it, to learn
// what the server speaks; it sends nothing else and closes. A TLS server answers
// the ClientHello with a ServerHello (the handshake completes: the certificate is
// not checked, only the protocol matters here) or with a TLS alert. A plaintext
// gRPC server writes its HTTP/2 SETTINGS frame first, which is no TLS record. known
// is false when the answer says neither (the connection failed or was closed
// without a word).
func probeTLS(ctx context.Context, addr string) (speaksTLS, known bool) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, false
	}
	defer raw.Close()
	// InsecureSkipVerify: the probe asks which protocol the server speaks, not who
	// it is; nothing is sent over this connection.
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec
	err = conn.HandshakeContext(ctx)
	var rec tls.RecordHeaderError
	var op *net.OpError
	switch {
	case err == nil:
		return true, true
	case errors.As(err, &rec):
		return false, true
	case errors.As(err, &op) && op.Op == "remote error": // the server sent a TLS alert
		return true, true
	}
	return false, false
}
