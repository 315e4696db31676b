package tlsfiles

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/flagconfig"
)

// writePEMs writes a self-signed CA certificate and its key into dir.
func writePEMs(t *testing.T, dir string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "netwatch test CA"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile, cert
}

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
	certFile, keyFile, cert := writePEMs(t, dir)
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
	certFile, keyFile, cert := writePEMs(t, dir)
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
