package pcapfile

import "netwatch.dev/common/oracle"

// pcapDir holds the shared test captures.
var pcapDir = oracle.Dir()
