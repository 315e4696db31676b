// Package tlsfiles reads the PEM files named by the TLS flags of both binaries
// (the collector's --tls-cert, --tls-key and --tls-client-ca, the sensor's
// --tls-cert, --tls-key and --ca). Errors are *flagconfig.FieldError naming the
// field of the caller's configuration that holds the file, so the command reports
// the flag, its value and where it came from.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"os"

	"netwatch.dev/common/flagconfig"
)

// CheckPair says what is wrong with a certificate and key file pair: one is given
// without the other. certField and keyField are the fields holding them; both
// binaries call their flags --tls-cert and --tls-key.
func CheckPair(certField, cert, keyField, key string) error {
	switch {
	case cert != "" && key == "":
		return flagconfig.Fieldf(keyField, "--tls-cert needs --tls-key")
	case cert == "" && key != "":
		return flagconfig.Fieldf(certField, "--tls-key needs --tls-cert")
	}
	return nil
}

// KeyPair loads the certificate (chain) of certFile and its private key from
// keyFile; an error is about certField (the pair is named by its certificate).
func KeyPair(certField, certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, &flagconfig.FieldError{Field: certField, Err: err}
	}
	return cert, nil
}

// CertPool reads the CA certificates of file into a pool; an error, also for a
// file without any PEM certificate, is about field.
func CertPool(field, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, &flagconfig.FieldError{Field: field, Err: err}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, flagconfig.Fieldf(field, "%s holds no PEM certificate", file)
	}
	return pool, nil
}
