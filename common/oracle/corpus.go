package oracle

import (
	"os"
	"path/filepath"
	"testing"
)

// CorpusEnv is the environment variable that makes the corpus-writing tests
// regenerate their fuzz seed corpora from the captures.
const CorpusEnv = "NETWATCH_WRITE_FUZZ_CORPUS"

// NewCorpus is the start of a test that regenerates the seed corpus of the fuzz
// target in the calling package (testdata/fuzz/TARGET) from the test captures: it
// skips t unless CorpusEnv is set, empties that directory and returns it with the
// paths of the captures (Captures of Dir, sorted).
func NewCorpus(t testing.TB, target string) (dir string, captures []string) {
	t.Helper()
	if os.Getenv(CorpusEnv) == "" {
		t.Skip("set " + CorpusEnv + "=1 to regenerate the corpus")
	}
	dir = filepath.Join("testdata", "fuzz", target)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	captures, err := Captures(Dir())
	if err != nil {
		t.Fatal(err)
	}
	return dir, captures
}
