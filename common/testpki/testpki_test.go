package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSelfSignedIsAUsablePairAndCA(t *testing.T) {
	certFile, keyFile, cert := SelfSigned(t, t.TempDir())
	_, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	pemBytes, err := os.ReadFile(certFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pemBytes))
	for _, name := range []string{"localhost", "127.0.0.1"} {
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			_, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}})
			require.NoError(t, err, "%s, usage %v", name, usage)
		}
	}
}
