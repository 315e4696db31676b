package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A real `go test -json` stream (trimmed timestamps): a pass, a skip with a two-line
// reason after a log line, a failing subtest, then a package that fails outside its
// tests and one that does not build.
const stream = `{"Action":"start","Package":"x"}
{"Action":"run","Package":"x","Test":"TestA"}
{"Action":"output","Package":"x","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"x","Test":"TestA","Output":"    x_test.go:3: hello\n"}
{"Action":"output","Package":"x","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"x","Test":"TestA","Elapsed":0}
{"Action":"run","Package":"x","Test":"TestSkip"}
{"Action":"output","Package":"x","Test":"TestSkip","Output":"=== RUN   TestSkip\n"}
{"Action":"output","Package":"x","Test":"TestSkip","Output":"    x_test.go:4: before\n"}
{"Action":"output","Package":"x","Test":"TestSkip","Output":"    x_test.go:4: needs root (netns)\n"}
{"Action":"output","Package":"x","Test":"TestSkip","Output":"        second line\n"}
{"Action":"output","Package":"x","Test":"TestSkip","Output":"--- SKIP: TestSkip (0.00s)\n"}
{"Action":"skip","Package":"x","Test":"TestSkip","Elapsed":0}
{"Action":"run","Package":"x","Test":"TestParent"}
{"Action":"output","Package":"x","Test":"TestParent","Output":"=== RUN   TestParent\n"}
{"Action":"run","Package":"x","Test":"TestParent/ok"}
{"Action":"output","Package":"x","Test":"TestParent/ok","Output":"=== RUN   TestParent/ok\n"}
{"Action":"output","Package":"x","Test":"TestParent/ok","Output":"--- PASS: TestParent/ok (0.00s)\n"}
{"Action":"pass","Package":"x","Test":"TestParent/ok","Elapsed":0}
{"Action":"run","Package":"x","Test":"TestParent/bad"}
{"Action":"output","Package":"x","Test":"TestParent/bad","Output":"=== RUN   TestParent/bad\n"}
{"Action":"output","Package":"x","Test":"TestParent/bad","Output":"    x_test.go:5: boom: x\n"}
{"Action":"output","Package":"x","Test":"TestParent/bad","Output":"--- FAIL: TestParent/bad (0.00s)\n"}
{"Action":"fail","Package":"x","Test":"TestParent/bad","Elapsed":0}
{"Action":"output","Package":"x","Test":"TestParent","Output":"--- FAIL: TestParent (0.00s)\n"}
{"Action":"fail","Package":"x","Test":"TestParent","Elapsed":0}
{"Action":"output","Package":"x","Output":"FAIL\n"}
{"Action":"output","Package":"x","Output":"FAIL\tx\t0.023s\n"}
{"Action":"fail","Package":"x","Elapsed":0.024}
{"Action":"start","Package":"y"}
{"Action":"output","Package":"y","Output":"ok  \ty\t0.010s\n"}
{"Action":"pass","Package":"y","Elapsed":0.01}
{"Action":"start","Package":"z"}
{"Action":"output","Package":"z","Output":"build the collector: exit status 1\n"}
{"Action":"output","Package":"z","Output":"FAIL\tz\t0.100s\n"}
{"Action":"fail","Package":"z","Elapsed":0.1}
{"ImportPath":"w [w.test]","Action":"build-output","Output":"w/w_test.go:3:1: syntax error\n"}
{"ImportPath":"w [w.test]","Action":"build-fail"}
{"Action":"start","Package":"w"}
{"Action":"output","Package":"w","Output":"FAIL\tw [build failed]\n"}
{"Action":"fail","Package":"w","Elapsed":0,"FailedBuild":"w [w.test]"}
`

func convert(t *testing.T, in string) (human string, recs []Record, fails int) {
	t.Helper()
	var out, res bytes.Buffer
	c := newConverter("unit", &out, json.NewEncoder(&res))
	if err := c.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	fails = c.finish()
	dec := json.NewDecoder(&res)
	for dec.More() {
		var r Record
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return out.String(), recs, fails
}

func TestGoStreamIsCountedAndFailuresShown(t *testing.T) {
	human, recs, fails := convert(t, stream)
	want := []Record{
		{Run: "unit", Test: "x TestA", Result: "pass"},
		{Run: "unit", Test: "x TestSkip", Result: "skip", Reason: "needs root (netns) second line (x_test.go:4)"},
		{Run: "unit", Test: "x TestParent/ok", Result: "pass"},
		{Run: "unit", Test: "x TestParent/bad", Result: "fail"},
		{Run: "unit", Test: "x TestParent", Result: "fail"},
		{Run: "unit", Test: "z", Result: "fail", Reason: "the package failed outside its tests (build, TestMain, exit or timeout)"},
		{Run: "unit", Test: "w", Result: "fail", Reason: "the package failed outside its tests (build, TestMain, exit or timeout)"},
	}
	if len(recs) != len(want) {
		t.Fatalf("records:\n got %+v\nwant %+v", recs, want)
	}
	for i := range want {
		if recs[i] != want[i] {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, recs[i], want[i])
		}
	}
	if fails != 4 {
		t.Errorf("failures = %d, want 4", fails)
	}
	for _, s := range []string{
		"    x_test.go:5: boom: x\n--- FAIL: TestParent/bad (0.00s)\n--- FAIL: TestParent (0.00s)\n", // the failing test's log
		"FAIL\tx\t0.023s\n", "ok  \ty\t0.010s\n", "build the collector: exit status 1\n", "w/w_test.go:3:1: syntax error\n",
	} {
		if !strings.Contains(human, s) {
			t.Errorf("output lacks %q:\n%s", s, human)
		}
	}
	for _, s := range []string{"=== RUN", "hello", "TestSkip"} { // a passing or skipped test's log is not shown
		if strings.Contains(human, s) {
			t.Errorf("output shows %q:\n%s", s, human)
		}
	}
}

func TestTestLeftRunningByADyingBinaryFails(t *testing.T) {
	in := `{"Action":"run","Package":"p","Test":"TestHang"}
{"Action":"output","Package":"p","Test":"TestHang","Output":"=== RUN   TestHang\n"}
{"Action":"output","Package":"p","Test":"TestHang","Output":"panic: test timed out after 10m0s\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t600.0s\n"}
{"Action":"fail","Package":"p","Elapsed":600}
`
	human, recs, fails := convert(t, in)
	if fails != 1 || len(recs) != 1 || recs[0].Test != "p TestHang" || recs[0].Result != "fail" {
		t.Fatalf("fails %d, records %+v", fails, recs)
	}
	if !strings.Contains(human, "panic: test timed out") {
		t.Errorf("the dying test's output is not shown:\n%s", human)
	}
	// Cut off: go test killed mid-package.
	_, recs, fails = convert(t, in[:strings.Index(in, `{"Action":"output","Package":"p","Output"`)])
	if fails != 1 || len(recs) != 1 || recs[0].Result != "fail" {
		t.Fatalf("cut-off stream: fails %d, records %+v", fails, recs)
	}
}

func TestTotalListsSkipsAndFailuresThenOneSummaryLine(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, recs ...Record) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		for _, r := range recs {
			enc.Encode(r)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go-a.jsonl", Record{Run: "go a", Test: "netwatch.dev/a TestOne", Result: "pass"},
		Record{Run: "go a", Test: "netwatch.dev/a TestLive", Result: "skip", Reason: "needs root"})
	write("node.jsonl", Record{Run: "webui unit", Test: "t.mjs > x", Result: "pass"})
	var out bytes.Buffer
	if rc := total(&out, dir, 0); rc != 0 {
		t.Errorf("rc = %d with no failure", rc)
	}
	want := "skipped (1):\n  a TestLive  [go a]: needs root\ntests: 2 passed, 0 failed, 1 skipped\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}

	write("node2.jsonl", Record{Run: "webui e2e", Test: "d.mjs > y", Result: "fail"})
	out.Reset()
	if rc := total(&out, dir, 0); rc != 1 {
		t.Errorf("rc = %d with a failure", rc)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if last := lines[len(lines)-1]; last != "tests: 2 passed, 1 failed, 1 skipped" {
		t.Errorf("last line %q:\n%s", last, out.String())
	}
	if !strings.Contains(out.String(), "FAILED (1):\n  d.mjs > y  [webui e2e]\n") {
		t.Errorf("the failure is not listed:\n%s", out.String())
	}

	out.Reset()
	os.Remove(filepath.Join(dir, "node2.jsonl"))
	if rc := total(&out, dir, 2); rc != 1 || !strings.HasSuffix(out.String(), "a step that is not a test failed: make's *** line above names it\ntests: 2 passed, 0 failed, 1 skipped\n") {
		t.Errorf("a failed step with no failed test: rc %d:\n%s", rc, out.String())
	}

	out.Reset()
	if rc := total(&out, t.TempDir(), 0); rc != 1 || !strings.Contains(out.String(), "nothing ran") {
		t.Errorf("empty dir: rc %d, %q", rc, out.String())
	}
}
