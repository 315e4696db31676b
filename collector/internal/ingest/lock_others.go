//go:build !unix

package ingest

// lockDir does not lock on this GOOS: run one collector per data directory.
func lockDir(string) (func(), error) { return func() {}, nil }
