package pcapfile

// pcapDir holds the shared test captures.
const pcapDir = "../../../common/oracle/testdata/pcaps"
