package tlsfiles

import (
	"crypto/x509"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/flagconfig"
	"netwatch.dev/common/testpki"
)

// fieldOf is the field a *flagconfig.FieldError names.
func fieldOf(t *testing.T, err error) string {
	t.Helper()
	var fe *flagconfig.FieldError
	require.ErrorAs(t, err, &fe)
	return fe.Field
}

func TestCheckPair(t *testing.T) {
	for _, tc := range []struct {
		name, cert, key string
		field, msg      string
	}{
		{name: "neither"},
		{name: "both", cert: "c.pem", key: "k.pem"},
		{name: "certificate without key", cert: "c.pem", field: "Key", msg: "Key: --tls-cert needs --tls-key"},
		{name: "key without certificate", key: "k.pem", field: "Cert", msg: "Cert: --tls-key needs --tls-cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPair("Cert", tc.cert, "Key", tc.key)
			if tc.msg == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.msg)
			assert.Equal(t, tc.field, fieldOf(t, err))
		})
	}
}

func TestKeyPair(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := testpki.SelfSigned(t, dir)
	pair, err := KeyPair("TLSCert", certFile, keyFile)
	require.NoError(t, err)
	require.Len(t, pair.Certificate, 1)
	assert.Equal(t, cert.Raw, pair.Certificate[0])

	_, err = KeyPair("TLSCert", filepath.Join(dir, "nope.pem"), keyFile)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Equal(t, "TLSCert", fieldOf(t, err))

	_, err = KeyPair("CertFile", certFile, certFile)
	require.Error(t, err, "a certificate is not a key")
	assert.Equal(t, "CertFile", fieldOf(t, err))
	assert.Contains(t, err.Error(), "CertFile: tls: ")
}

func TestCertPool(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := testpki.SelfSigned(t, dir)
	pool, err := CertPool("CAFile", certFile)
	require.NoError(t, err)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"})
	assert.NoError(t, err, "the pool holds the CA")

	_, err = CertPool("CAFile", filepath.Join(dir, "nope.pem"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Equal(t, "CAFile", fieldOf(t, err))

	_, err = CertPool("TLSClientCA", keyFile)
	assert.EqualError(t, err, "TLSClientCA: "+keyFile+" holds no PEM certificate")
	assert.Equal(t, "TLSClientCA", fieldOf(t, err))
}
