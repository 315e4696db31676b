// Command testsum counts the tests of `make test` across its runs (every Go module,
// the -race runs, the live-capture run, the dashboard's JS unit and browser tests)
// and prints one summary line at the end:
//
//	tests: 812 passed, 0 failed, 14 skipped
//
// preceded by the failed and the skipped tests, each skip with its reason.
//
//	testsum go -name NAME -out FILE.jsonl -- go test -json ARGS...
//
// runs the go test command, prints what `go test` prints without -v (a line per
// package; the full output of each failed test and of a failed package), and writes
// one result record per test to FILE.jsonl. A test is every Test function and every
// subtest (t.Run), parents included, as `go test -json` reports them. A package that
// fails with no failed test (build error, panic or exit outside a test, timeout) is
// one failed test named after the package. It exits 1 when anything failed.
//
//	testsum total DIR [STATUS]
//
// reads every *.jsonl in DIR (the Go runs, and the node runs written by
// reporter.mjs in this directory), lists the failed and the skipped tests and ends
// with the summary line; it exits 1 when a test failed or DIR holds no result.
// STATUS is the exit status of the steps that ran (make -k): when it is not 0 and
// no test failed, a step that is not a test did (a build, the leanness check, a
// fuzz target), which is said before the summary line, and the exit status is 1.
//
// Standard library only; built by the Makefile into bin/testsum.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Record is one test's result, one JSON object per line in a result file. The
// node reporter (reporter.mjs) writes the same shape.
type Record struct {
	Run    string `json:"run"`              // which run: "go test -short sensor", "webui e2e", ...
	Test   string `json:"test"`             // "netwatch.dev/sensor/internal/flow TestX/sub"
	Result string `json:"result"`           // pass, fail or skip
	Reason string `json:"reason,omitempty"` // the skip message
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "go":
		os.Exit(goCmd(os.Args[2:]))
	case "total":
		status := 0
		switch len(os.Args) {
		case 3:
		case 4:
			n, err := strconv.Atoi(os.Args[3])
			if err != nil {
				usage()
			}
			status = n
		default:
			usage()
		}
		os.Exit(total(os.Stdout, os.Args[2], status))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: testsum go -name NAME -out FILE.jsonl -- go test -json ARGS...\n       testsum total DIR [STATUS]")
	os.Exit(2)
}

func goCmd(args []string) int {
	fs := flag.NewFlagSet("testsum go", flag.ExitOnError)
	name := fs.String("name", "", "the run's name in the summary")
	out := fs.String("out", "", "result file to write (JSON lines)")
	fs.Parse(args)
	cmdline := fs.Args()
	if *name == "" || *out == "" || len(cmdline) == 0 {
		usage()
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		return 1
	}
	defer f.Close()
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "testsum: %s: %v\n", strings.Join(cmdline, " "), err)
		return 1
	}
	c := newConverter(*name, os.Stdout, json.NewEncoder(f))
	readErr := c.read(stdout)
	waitErr := cmd.Wait()
	failed := c.finish()
	if readErr != nil {
		fmt.Fprintln(os.Stderr, "testsum: reading go test's output:", readErr)
	}
	if waitErr != nil && failed == 0 {
		// go test failed and no test says why (a bad flag, a missing module, ...).
		fmt.Printf("FAIL\t%s: %s: %v\n", *name, strings.Join(cmdline, " "), waitErr)
		c.record(Record{Test: strings.Join(cmdline, " "), Result: "fail", Reason: waitErr.Error()})
		failed++
	}
	if failed > 0 || waitErr != nil || readErr != nil {
		return 1
	}
	return 0
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output, build-fail
}

type testState struct {
	output []string
	done   bool
}

type pkgState struct {
	output      []string // output outside any test
	tests       map[string]*testState
	order       []string // tests in start order
	failedTests int
}

// converter turns a test2json stream into the human output and the records.
type converter struct {
	run   string
	w     io.Writer
	enc   *json.Encoder
	pkgs  map[string]*pkgState
	order []string
	fails int
}

func newConverter(run string, w io.Writer, enc *json.Encoder) *converter {
	return &converter{run: run, w: w, enc: enc, pkgs: map[string]*pkgState{}}
}

func (c *converter) record(r Record) {
	r.Run = c.run
	if err := c.enc.Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "testsum: writing results:", err)
	}
}

func (c *converter) pkg(name string) *pkgState {
	p := c.pkgs[name]
	if p == nil {
		p = &pkgState{tests: map[string]*testState{}}
		c.pkgs[name] = p
		c.order = append(c.order, name)
	}
	return p
}

func (c *converter) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			fmt.Fprintf(c.w, "%s\n", line) // not test2json: pass it on
			continue
		}
		c.event(ev)
	}
	return sc.Err()
}

// framing is test2json's own lines, left out of what is shown for a failure.
func framing(line string) bool {
	return strings.HasPrefix(line, "=== RUN") || strings.HasPrefix(line, "=== PAUSE") ||
		strings.HasPrefix(line, "=== CONT") || strings.HasPrefix(line, "=== NAME")
}

func (c *converter) event(ev event) {
	switch ev.Action {
	case "build-output":
		fmt.Fprint(c.w, ev.Output)
		return
	case "build-fail":
		return // the package's fail event follows
	}
	if ev.Package == "" {
		return
	}
	p := c.pkg(ev.Package)
	if ev.Test == "" {
		switch ev.Action {
		case "output":
			p.output = append(p.output, ev.Output)
		case "pass", "skip":
			for _, l := range p.output {
				if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "?") {
					fmt.Fprint(c.w, l)
				}
			}
			p.output = nil
		case "fail":
			c.pkgFailed(ev.Package, p)
		}
		return
	}
	t := p.tests[ev.Test]
	if t == nil {
		t = &testState{}
		p.tests[ev.Test] = t
		p.order = append(p.order, ev.Test)
	}
	switch ev.Action {
	case "output":
		t.output = append(t.output, ev.Output)
	case "pass":
		t.done = true
		c.record(Record{Test: ev.Package + " " + ev.Test, Result: "pass"})
	case "skip":
		t.done = true
		c.record(Record{Test: ev.Package + " " + ev.Test, Result: "skip", Reason: skipReason(t.output)})
	case "fail":
		t.done = true
		p.failedTests++
		c.fails++
		c.record(Record{Test: ev.Package + " " + ev.Test, Result: "fail"})
		for _, l := range t.output {
			if !framing(l) {
				fmt.Fprint(c.w, l)
			}
		}
	}
}

// pkgFailed shows what a failed package printed outside its tests and, when no test
// failed, counts the package as one failed test (and any test it left running).
func (c *converter) pkgFailed(name string, p *pkgState) {
	for _, id := range p.order {
		if t := p.tests[id]; !t.done { // still running when the binary died (panic, timeout)
			t.done = true
			p.failedTests++
			c.fails++
			c.record(Record{Test: name + " " + id, Result: "fail", Reason: "did not finish"})
			for _, l := range t.output {
				if !framing(l) {
					fmt.Fprint(c.w, l)
				}
			}
		}
	}
	for _, l := range p.output {
		fmt.Fprint(c.w, l)
	}
	p.output = nil
	if p.failedTests == 0 {
		c.fails++
		c.record(Record{Test: name, Result: "fail", Reason: "the package failed outside its tests (build, TestMain, exit or timeout)"})
	}
}

// finish accounts for packages the stream left unfinished (go test killed) and
// returns the number of failures.
func (c *converter) finish() int {
	for _, name := range c.order {
		p := c.pkgs[name]
		if len(p.output) > 0 || slices.ContainsFunc(p.order, func(id string) bool { return !p.tests[id].done }) {
			c.pkgFailed(name, p)
		}
	}
	return c.fails
}

// fileLine is how the testing package starts a t.Log or t.Skip line.
var fileLine = regexp.MustCompile(`^\s+(\S+\.go:\d+): (.*)$`)

// skipReason is the skip message: the last logged entry of the test (t.Skip logs
// its arguments just before skipping), continuation lines joined, with its place.
func skipReason(output []string) string {
	var lines []string
	for _, l := range output {
		l = strings.TrimRight(l, "\n")
		if framing(l) || strings.HasPrefix(strings.TrimSpace(l), "--- SKIP") {
			continue
		}
		lines = append(lines, l)
	}
	for i := len(lines) - 1; i >= 0; i-- {
		m := fileLine.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		msg := []string{m[2]}
		for _, cont := range lines[i+1:] {
			msg = append(msg, strings.TrimSpace(cont))
		}
		return strings.Join(msg, " ") + " (" + m[1] + ")"
	}
	if len(lines) > 0 {
		return strings.TrimSpace(strings.Join(lines, " "))
	}
	return "no reason given"
}

// total prints the failed and skipped tests of every result file in dir, then the
// summary line. status is the steps' exit status.
func total(w io.Writer, dir string, status int) int {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil || len(files) == 0 {
		fmt.Fprintf(w, "tests: no results in %s: nothing ran\n", dir)
		return 1
	}
	slices.Sort(files)
	var pass, fail, skip []Record
	for _, name := range files {
		recs, err := readRecords(name)
		if err != nil {
			fmt.Fprintf(w, "tests: %s: %v\n", name, err)
			return 1
		}
		for _, r := range recs {
			switch r.Result {
			case "pass":
				pass = append(pass, r)
			case "fail":
				fail = append(fail, r)
			case "skip":
				skip = append(skip, r)
			default:
				fmt.Fprintf(w, "tests: %s: result %q of %s is not pass, fail or skip\n", name, r.Result, r.Test)
				return 1
			}
		}
	}
	list := func(title string, rs []Record) {
		if len(rs) == 0 {
			return
		}
		fmt.Fprintf(w, "%s (%d):\n", title, len(rs))
		for _, r := range rs {
			line := "  " + strings.TrimPrefix(r.Test, "netwatch.dev/") + "  [" + r.Run + "]"
			if r.Reason != "" {
				line += ": " + r.Reason
			}
			fmt.Fprintln(w, line)
		}
	}
	list("skipped", skip)
	list("FAILED", fail)
	if status != 0 && len(fail) == 0 {
		fmt.Fprintln(w, "a step that is not a test failed: make's *** line above names it")
	}
	fmt.Fprintf(w, "tests: %d passed, %d failed, %d skipped\n", len(pass), len(fail), len(skip))
	if len(fail) > 0 || status != 0 {
		return 1
	}
	return 0
}

func readRecords(name string) ([]Record, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	dec := json.NewDecoder(f)
	for {
		var r Record
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", len(out)+1, err)
		}
		out = append(out, r)
	}
}
