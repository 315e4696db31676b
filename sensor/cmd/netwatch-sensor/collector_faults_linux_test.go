package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"netwatch.dev/common/oracle"
	"netwatch.dev/common/syncbuf"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/sensor/internal/synth"
	"netwatch.dev/sensor/internal/testcollector"
)

// TestCollectorFaults is the fault-injection proof of "lose nothing, trust nothing"
// against the real binaries: sensor processes (replaying captures with a tshark
// oracle, and a synthetic capture) stream to the collector binary while it suffers
// faults chosen at random from a seed (printed; NETWATCH_FAULTS_SEED reproduces
// the choices, not the exact timing):
//
//   - kill9: SIGKILL under load, restart on the same data directory;
//   - flip-snapshot, flip-segment: SIGKILL, then 1-3 bytes flipped at random offsets
//     of a snapshot or log segment of the data directory, then restart;
//   - delete-segment: SIGKILL, restart (a new segment), SIGKILL, one segment deleted
//     (one whose loss the collector can know of: not the newest unless a snapshot
//     names it), restart;
//   - full-disk (root: the data directory is a small tmpfs the test mounts): the
//     free space is filled while batches arrive, then freed again (the filler file
//     deleted, or the tmpfs remounted bigger), without a restart.
//
// Each run ends with the sensors' replays finished, a last SIGKILL and restart, and
// one line: the faults, the flows before (the oracle's flows, packets and bytes of
// what the sensors sent), the flows after (what GET /api/v1/flows answers after
// the restart), the loss observed, the loss reported (health incomplete and its
// reasons, the collector's damage metrics on /metrics). It passes when:
//
//   - the collector always comes back: every start is ready (/readyz 200, or
//     /api/v1/health answering where /readyz is absent) — never a crash loop;
//   - nothing is invented or doubled: no flow exceeds the oracle's;
//   - where nothing was damaged (kill9, full-disk) nothing is lost: every flow equals
//     the oracle's exactly, and the sensors finish with every batch acknowledged;
//   - where files were damaged and packets are missing, the loss is reported: health
//     incomplete, with a reason naming the damaged file; where only a snapshot was
//     damaged, the records it reports lost are at least the flows found short (a
//     snapshot record is one flow);
//   - while the disk is full the collector says so (health unhealthy); once space is
//     free it acknowledges again by itself;
//   - what the collector answered before the last restart it answers after it.
//
// -short (make test) runs one run per fault, about a minute; make soak runs random
// mixes of 1-3 faults per run for NETWATCH_FAULTS_DURATION.
func TestCollectorFaults(t *testing.T) {
	if raceEnabled {
		t.Skip("drives separate binaries: under -race only the harness would be checked; the plain pass runs it")
	}
	long := envDuration(t, "NETWATCH_FAULTS_DURATION", 0) // 0: the short set, one run per fault
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("NETWATCH_FAULTS_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "NETWATCH_FAULTS_SEED=%q: not an unsigned integer", v)
	}
	t.Logf("faults seed %d (NETWATCH_FAULTS_SEED=%d reproduces the choices)", seed, seed)
	root := os.Geteuid() == 0

	fx := &faultFixture{sensorBin: buildSensor(t, t.TempDir()), root: root}
	fx.sources = faultSources(t, seed)

	kinds := []string{faultKill, faultFlipSnapshot, faultFlipSegment, faultDeleteSegment, faultFullDisk}
	if long == 0 {
		for i, k := range kinds {
			t.Run(fmt.Sprintf("%02d-%s", i, k), func(t *testing.T) {
				fx.run(t, i, []string{k}, rand.New(rand.NewPCG(seed, uint64(i))))
			})
		}
		return
	}
	if !root {
		t.Logf("full-disk faults left out: mounting a tmpfs as the data directory needs root")
		kinds = slices.DeleteFunc(kinds, func(k string) bool { return k == faultFullDisk })
	}
	start := time.Now()
	for i := 0; time.Since(start) < long; i++ {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		plan := make([]string, 1+rng.IntN(3))
		for j := range plan {
			plan[j] = kinds[rng.IntN(len(kinds))]
		}
		if !t.Run(fmt.Sprintf("%03d-%s", i, strings.Join(plan, "+")), func(t *testing.T) { fx.run(t, i, plan, rng) }) {
			t.Logf("run %d failed; reproduce its choices with NETWATCH_FAULTS_SEED=%d", i, seed)
		}
	}
}

const (
	faultKill          = "kill9"
	faultFlipSnapshot  = "flip-snapshot"
	faultFlipSegment   = "flip-segment"
	faultDeleteSegment = "delete-segment"
	faultFullDisk      = "full-disk"

	// faultExportInterval: sensors send a batch this often (a kill lands between
	// many of them).
	faultExportInterval = "200ms"
	// faultReplay is about how long each sensor's replay lasts.
	faultReplay = 4 * time.Second
	// tmpfsMiB is the size of the full-disk run's data directory; each remount
	// makes it 4 times bigger.
	tmpfsMiB = 16
)

// faultSource is one sensor's input and the flows it must produce.
type faultSource struct {
	id, path, speed string
	want            []oracle.Flow
}

type faultFixture struct {
	sensorBin string
	root      bool
	sources   []faultSource
}

// faultSources: three shared captures with their tshark oracle, each paced to
// about faultReplay, and a synthetic capture (synth.WriteMixedPcap: 3,000 flows,
// IPv4 and IPv6, TCP, UDP, ICMP) whose expected flows are what the sensor makes of
// it offline (--output jsonl): the collector under test, not the decoder, is what
// must not lose them.
func faultSources(t *testing.T, seed uint64) []faultSource {
	t.Helper()
	var out []faultSource
	for _, name := range []string{killCapture, "pcapplusplus-example2.pcap", "pcapplusplus-DnsPackets.pcap"} {
		path := filepath.Join(pcapDir, name)
		want, _, err := oracle.Load(pcapDir, oracle.Name(path))
		require.NoError(t, err)
		out = append(out, faultSource{id: "cap-" + oracle.Name(path), path: path, speed: paceSpeed(t, path, faultReplay), want: want})
	}
	path := filepath.Join(t.TempDir(), "synth-mixed.pcap")
	f, err := os.Create(path)
	require.NoError(t, err)
	_, err = synth.WriteMixedPcap(f, synth.MixedConfig{Frames: 11_000, Flows: 3_000, Seed: seed, Concurrent: 500, StepNS: 400_000})
	require.NoError(t, err)
	require.NoError(t, f.Close())
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--read", path, "--output", "jsonl", "--sensor-id", "synth"}, &stdout, &stderr)
	require.Equal(t, exitOK, code, stderr.String())
	recs := parseLines(t, stdout.String())
	want := oracle.Fold(nil, recs)
	require.NotEmpty(t, want)
	out = append(out, faultSource{id: "synth-mixed", path: path, speed: paceSpeed(t, path, faultReplay), want: want})
	return out
}

// faultSensor is one running sensor process.
type faultSensor struct {
	src  faultSource
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	done chan struct{}
	err  error
}

func (fx *faultFixture) startSensors(t *testing.T, addr string) []*faultSensor {
	t.Helper()
	var out []*faultSensor
	for _, src := range fx.sources {
		s := &faultSensor{src: src, log: &syncbuf.Buffer{}, done: make(chan struct{})}
		s.cmd = exec.Command(fx.sensorBin, "--read", src.path, "--speed", src.speed, "--collector", addr, "--sensor-id", src.id,
			"--export-interval", faultExportInterval, "--metrics-listen", "")
		s.cmd.Stdout, s.cmd.Stderr = io.Discard, s.log
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with the test, even on a timeout
		require.NoError(t, s.cmd.Start())
		go func() { s.err = s.cmd.Wait(); close(s.done) }()
		t.Cleanup(func() {
			s.cmd.Process.Kill()
			<-s.done
			if t.Failed() {
				t.Logf("sensor %s log (tail):\n%s", src.id, tail(s.log.String(), 3000))
			}
		})
		out = append(out, s)
	}
	return out
}

// waitSensors waits up to d for every sensor to exit; it returns those still
// running.
func waitSensors(sensors []*faultSensor, d time.Duration) (running []string) {
	deadline := time.After(d)
wait:
	for _, s := range sensors {
		select {
		case <-s.done:
		case <-deadline:
			break wait
		}
	}
	for _, s := range sensors {
		select {
		case <-s.done:
		default:
			running = append(running, s.src.id)
		}
	}
	return running
}

// faultRun is what one run saw.
type faultRun struct {
	t        *testing.T
	c        *testcollector.Proc
	rng      *rand.Rand
	dataDir  string
	faults   []string // what was done, with its details
	damaged  []string // base names of the files flipped or deleted
	deleted  []uint64 // indexes of deleted segments
	snapOnly bool     // only snapshots were damaged
	problems []string // pass conditions that failed
	sensors  []*faultSensor
	readyVia string // how the last start was found ready
	tmpfsMiB int    // size of the data dir's tmpfs (full-disk runs)
	starts   int
}

func (r *faultRun) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.problems = append(r.problems, msg)
	r.t.Error(msg)
}

// start starts the collector and waits until it is ready; a collector that exits
// or does not get ready is a crash loop and fails the run (it returns false).
func (r *faultRun) start() bool {
	if err := r.c.TryStart(20 * time.Second); err != nil {
		r.fail("collector did not come back: %v", err)
		return false
	}
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !r.c.Running() {
			r.fail("collector exited after it started (crash loop)")
			return false
		}
		code, body := httpGet("http://" + r.c.HTTPAddr() + "/readyz")
		if code == http.StatusOK {
			r.readyVia, r.starts = "/readyz 200", r.starts+1
			return true
		}
		if code == http.StatusNotFound { // no /readyz on this collector: health answering is ready
			if hc, _ := httpGet("http://" + r.c.HTTPAddr() + "/api/v1/health"); hc == http.StatusOK {
				r.readyVia, r.starts = "/api/v1/health 200 (no /readyz)", r.starts+1
				return true
			}
		}
		last = fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
	}
	r.fail("collector not ready 30 s after it started: /readyz %s", last)
	return false
}

func httpGet(u string) (int, string) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type healthAnswer struct {
	Status     string   `json:"status"`
	Incomplete bool     `json:"incomplete"`
	Reasons    []string `json:"reasons"`
}

func (r *faultRun) health() healthAnswer {
	var h healthAnswer
	code, body := httpGet("http://" + r.c.HTTPAddr() + "/api/v1/health")
	if code != http.StatusOK || protojsonLenient(body, &h) != nil {
		h.Status = fmt.Sprintf("(health %d: %s)", code, strings.TrimSpace(body))
	}
	return h
}

// protojsonLenient decodes the health answer's few fields with encoding/json.
func protojsonLenient(body string, h *healthAnswer) error {
	var resp netwatchv1.GetHealthResponse
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(body), &resp); err != nil {
		return err
	}
	h.Status, h.Incomplete, h.Reasons = resp.GetStatus(), resp.GetIncomplete(), resp.GetReasons()
	return nil
}

// damageMetrics are the collector's non-zero series on /metrics that count damage,
// loss or a full disk.
var damageMetric = regexp.MustCompile(`^netwatch_collector_[a-z0-9_]*(corrupt|damage|lost|missing|gap|space|enospc|skipped|torn)[a-z0-9_]*(\{[^}]*\})? `)

func (r *faultRun) damageMetrics() []string {
	_, body := httpGet("http://" + r.c.HTTPAddr() + "/metrics")
	var out []string
	for l := range strings.Lines(body) {
		l = strings.TrimSpace(l)
		if damageMetric.MatchString(l) && !strings.HasSuffix(l, " 0") {
			out = append(out, l)
		}
	}
	return out
}

// restFlows is every flow of sensor that GET /api/v1/flows answers, as records.
func (r *faultRun) restFlows(sensor string) ([]oracle.Record, error) {
	var recs []oracle.Record
	for off := 0; ; off += 1000 {
		q := url.Values{"sensor": {sensor}, "limit": {"1000"}, "offset": {strconv.Itoa(off)}, "sort_by": {"first_seen"}, "sort_order": {"asc"}}
		code, body := httpGet("http://" + r.c.HTTPAddr() + "/api/v1/flows?" + q.Encode())
		if code != http.StatusOK {
			return nil, fmt.Errorf("GET /api/v1/flows: %d %s", code, body)
		}
		var resp netwatchv1.ListFlowsResponse
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(body), &resp); err != nil {
			return nil, fmt.Errorf("GET /api/v1/flows: %w", err)
		}
		for _, f := range resp.GetFlows() {
			recs = append(recs, testcollector.Record(f))
		}
		if !resp.GetPagination().GetHasMore() {
			return recs, nil
		}
	}
}

// logFiles lists the data directory's files named prefix<index>suffix, by index.
func logFiles(dir, prefix, suffix string) (idx []uint64, paths []string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, suffix) {
			continue
		}
		i, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(n, prefix), suffix), 10, 64)
		if err == nil {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	for _, i := range idx {
		if prefix == "wal-" {
			paths = append(paths, filepath.Join(dir, fmt.Sprintf("wal-%016d.log", i)))
		} else {
			paths = append(paths, filepath.Join(dir, fmt.Sprintf("snap-%016d.snap", i)))
		}
	}
	return idx, paths
}

// newestSnapshot is the index of the newest snapshot (0, false without one).
func newestSnapshot(dir string) (uint64, bool) {
	idx, _ := logFiles(dir, "snap-", ".snap")
	if len(idx) == 0 {
		return 0, false
	}
	return idx[len(idx)-1], true
}

// flip xors 1-3 bytes at random offsets of path; it returns what it did.
func (r *faultRun) flip(path string) string {
	b, err := os.ReadFile(path)
	require.NoError(r.t, err)
	if len(b) == 0 {
		return filepath.Base(path) + " empty: nothing flipped"
	}
	var did []string
	for range 1 + r.rng.IntN(3) {
		off := r.rng.IntN(len(b))
		x := byte(1 + r.rng.IntN(255))
		b[off] ^= x
		did = append(did, fmt.Sprintf("@%d^%#02x", off, x))
	}
	require.NoError(r.t, os.WriteFile(path, b, 0o640))
	r.damaged = append(r.damaged, filepath.Base(path))
	return fmt.Sprintf("%s(%d B)%s", filepath.Base(path), len(b), strings.Join(did, ""))
}

func (r *faultRun) sleep(lo, hi time.Duration) {
	time.Sleep(lo + time.Duration(r.rng.Int64N(int64(hi-lo)+1)))
}

// apply does one fault; false when the collector did not come back.
func (r *faultRun) apply(kind string) bool {
	switch kind {
	case faultKill:
		r.sleep(300*time.Millisecond, 1500*time.Millisecond)
		r.c.Kill()
		down := time.Duration(r.rng.IntN(800)) * time.Millisecond
		time.Sleep(down)
		r.faults = append(r.faults, fmt.Sprintf("kill9(down %v)", down))
		return r.start()

	case faultFlipSnapshot:
		// Snapshots come every second (--snapshot-interval 1s) while batches arrive.
		deadline := time.Now().Add(5 * time.Second)
		for _, ok := newestSnapshot(r.dataDir); !ok && time.Now().Before(deadline); _, ok = newestSnapshot(r.dataDir) {
			time.Sleep(50 * time.Millisecond)
		}
		r.sleep(0, 700*time.Millisecond)
		r.c.Kill()
		_, snaps := logFiles(r.dataDir, "snap-", ".snap")
		if len(snaps) == 0 {
			r.faults = append(r.faults, "flip-snapshot(no snapshot yet: kill9 only)")
		} else {
			r.faults = append(r.faults, "flip-snapshot("+r.flip(snaps[len(snaps)-1])+")")
		}
		return r.start()

	case faultFlipSegment:
		r.sleep(500*time.Millisecond, 2*time.Second)
		r.c.Kill()
		r.snapOnly = false
		// The segments replay reads: from the newest snapshot on.
		from, _ := newestSnapshot(r.dataDir)
		idx, segs := logFiles(r.dataDir, "wal-", ".log")
		var cands []string
		for i, p := range segs {
			if fi, err := os.Stat(p); err == nil && fi.Size() > 0 && idx[i] >= from {
				cands = append(cands, p)
			}
		}
		if len(cands) == 0 {
			r.faults = append(r.faults, "flip-segment(no segment with data: kill9 only)")
		} else {
			r.faults = append(r.faults, "flip-segment("+r.flip(cands[r.rng.IntN(len(cands))])+")")
		}
		return r.start()

	case faultDeleteSegment:
		r.snapOnly = false
		r.sleep(300*time.Millisecond, 1*time.Second)
		r.c.Kill()
		if !r.start() { // a new segment: now there is one before the newest
			return false
		}
		r.sleep(300*time.Millisecond, 1*time.Second)
		r.c.Kill()
		from, hasSnap := newestSnapshot(r.dataDir)
		idx, segs := logFiles(r.dataDir, "wal-", ".log")
		// Not the newest segment unless a snapshot names it: nothing on disk says a
		// newest segment existed, so its loss cannot be known.
		var cands []int
		for i := range segs {
			if idx[i] >= from && (i < len(segs)-1 || (hasSnap && idx[i] == from)) {
				cands = append(cands, i)
			}
		}
		if len(cands) == 0 {
			for i := range len(segs) - 1 {
				cands = append(cands, i)
			}
		}
		if len(cands) == 0 {
			r.faults = append(r.faults, "delete-segment(none to delete: kill9 only)")
		} else {
			i := cands[r.rng.IntN(len(cands))]
			fi, _ := os.Stat(segs[i])
			require.NoError(r.t, os.Remove(segs[i]))
			r.damaged = append(r.damaged, filepath.Base(segs[i]))
			r.deleted = append(r.deleted, idx[i])
			size := int64(0)
			if fi != nil {
				size = fi.Size()
			}
			r.faults = append(r.faults, fmt.Sprintf("delete-segment(%s, %d B, of %d)", filepath.Base(segs[i]), size, len(segs)))
		}
		return r.start()

	case faultFullDisk:
		r.sleep(200*time.Millisecond, 800*time.Millisecond)
		filler := filepath.Join(r.dataDir, "filler")
		n, err := fillDisk(filler)
		if err != nil {
			r.fail("fill the data dir: %v", err)
			return true
		}
		// Batches keep arriving: the next write finds no space. (The status alone
		// says little: it is unhealthy too while no sensor is connected.)
		noSpace := func(h healthAnswer) bool {
			return slices.ContainsFunc(h.Reasons, func(s string) bool {
				return strings.Contains(s, "no space left on device") && strings.Contains(s, r.dataDir)
			})
		}
		var h healthAnswer
		var ready int
		sawFull := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			h = r.health()
			ready, _ = httpGet("http://" + r.c.HTTPAddr() + "/readyz")
			if h.Status == "unhealthy" && noSpace(h) {
				sawFull = true
				break
			}
		}
		full := fmt.Sprintf("health %s %q, /readyz %d", h.Status, h.Reasons, ready)
		replaying := slices.ContainsFunc(r.sensors, func(s *faultSensor) bool {
			select {
			case <-s.done:
				return false
			default:
				return true
			}
		})
		if !sawFull && !replaying {
			full = "not noticed: the replays were over, nothing was written"
		} else if !sawFull {
			r.fail("disk full for 5 s while batches arrive: health is not unhealthy with a reason naming %s and 'no space left on device' (%s)", r.dataDir, full)
		} else if ready == http.StatusOK {
			r.fail("disk full: /readyz answers 200")
		}
		r.sleep(500*time.Millisecond, 2*time.Second)
		how := "filler deleted"
		if r.rng.IntN(2) == 0 {
			r.tmpfsMiB *= 4
			how = fmt.Sprintf("remounted %d MiB", r.tmpfsMiB)
			if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%dm", r.tmpfsMiB), r.dataDir).CombinedOutput(); err != nil {
				r.fail("remount %s bigger: %v: %s", r.dataDir, err, out)
			}
		} else {
			require.NoError(r.t, os.Remove(filler))
		}
		// Space again: the collector must take batches by itself (no restart).
		recovered := false
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if h = r.health(); !noSpace(h) {
				recovered = true
				break
			}
		}
		if !recovered {
			r.fail("space freed (%s): health still says no space after 15 s: %q", how, h.Reasons)
		}
		r.faults = append(r.faults, fmt.Sprintf("full-disk(filler %d KiB; while full: %s; %s)", n>>10, full, how))
		return true
	}
	panic("unknown fault " + kind)
}

// fillDisk writes path until the file system is full; it returns the bytes written.
func fillDisk(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var n int64
	for {
		m, err := f.Write(chunk)
		n += int64(m)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// mountTmpfs mounts a tmpfs of size at a new directory, unmounted (lazily) when the
// test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	require.NoError(t, os.Mkdir(dir, 0o750))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0750", "netwatch-faults", dir).CombinedOutput()
	require.NoError(t, err, "mount tmpfs: %s", out)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount -l %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// tally is flows, packets and bytes.
type tally struct {
	flows          int
	packets, bytes uint64
}

func (a tally) String() string {
	return fmt.Sprintf("%d flows %d packets %d bytes", a.flows, a.packets, a.bytes)
}

func (a *tally) add(b tally) { a.flows += b.flows; a.packets += b.packets; a.bytes += b.bytes }

// loss compares got (folded like want) with want: what is there, what is short
// (flows with fewer packets or bytes than the oracle's, and by how much) and what
// is extra (a flow larger than the oracle's in any counter, or one it does not have).
func loss(want, got []oracle.Flow) (have, short tally, extra []string) {
	byKey := make(map[string]oracle.Flow, len(got))
	for _, g := range got {
		byKey[g.Key()] = g
		if g.FwdPackets+g.RevPackets > 0 {
			have.flows++
			have.packets += g.FwdPackets + g.RevPackets
			have.bytes += g.FwdBytes + g.RevBytes
		}
	}
	known := map[string]bool{}
	for _, w := range want {
		known[w.Key()] = true
		g := byKey[w.Key()]
		if g.FwdPackets > w.FwdPackets || g.RevPackets > w.RevPackets || g.FwdBytes > w.FwdBytes || g.RevBytes > w.RevBytes {
			extra = append(extra, fmt.Sprintf("%s: got %d/%d packets %d/%d bytes, oracle %d/%d %d/%d", w.Key(),
				g.FwdPackets, g.RevPackets, g.FwdBytes, g.RevBytes, w.FwdPackets, w.RevPackets, w.FwdBytes, w.RevBytes))
			continue
		}
		if dp, db := w.FwdPackets+w.RevPackets-g.FwdPackets-g.RevPackets, w.FwdBytes+w.RevBytes-g.FwdBytes-g.RevBytes; dp > 0 || db > 0 {
			short.flows++
			short.packets += dp
			short.bytes += db
		}
	}
	for _, g := range got {
		if !known[g.Key()] && g.FwdPackets+g.RevPackets > 0 {
			extra = append(extra, fmt.Sprintf("%s: not in the oracle", g.Key()))
		}
	}
	return have, short, extra
}

// sameFlows: a and b hold the same flows (order aside).
func sameFlows(a, b []oracle.Flow) bool {
	m := func(fs []oracle.Flow) map[string]oracle.Flow {
		out := map[string]oracle.Flow{}
		for _, f := range fs {
			if f.FwdPackets+f.RevPackets > 0 {
				out[f.Key()] = f
			}
		}
		return out
	}
	return maps.Equal(m(a), m(b))
}

var damagedRecords = regexp.MustCompile(`damaged: (\d+) records`)
var missingSegments = regexp.MustCompile(`segments (\d+)\.\.(\d+) missing`)

// names reports whether reason names the damaged file base (or, for a deleted
// segment of index idx, a missing range holding it).
func names(reason, base string, deleted []uint64) bool {
	if strings.Contains(reason, base) {
		return true
	}
	if m := missingSegments.FindStringSubmatch(reason); m != nil {
		a, _ := strconv.ParseUint(m[1], 10, 64)
		b, _ := strconv.ParseUint(m[2], 10, 64)
		for _, d := range deleted {
			if a <= d && d <= b && strings.HasPrefix(base, "wal-") && strings.Contains(base, fmt.Sprintf("%016d", d)) {
				return true
			}
		}
	}
	return false
}

func (fx *faultFixture) run(t *testing.T, n int, plan []string, rng *rand.Rand) {
	full := slices.Contains(plan, faultFullDisk)
	if full && !fx.root {
		t.Skip("full disk: the data directory is a tmpfs the test mounts, which needs root (run as root)")
	}
	r := &faultRun{t: t, rng: rng, dataDir: t.TempDir(), snapOnly: true}
	if full {
		r.dataDir, r.tmpfsMiB = mountTmpfs(t, fmt.Sprintf("%dm", tmpfsMiB)), tmpfsMiB
	}
	r.c = testcollector.New(t, collectorBin, "--snapshot-interval", "1s", "--rate-limit-local", "0")
	r.c.SetDataDir(r.dataDir)
	if !r.start() {
		return
	}
	r.sensors = fx.startSensors(t, r.c.Addr())
	started := time.Now()
	up := true
	for _, k := range plan {
		if up = r.apply(k); !up {
			break
		}
	}
	if up {
		if running := waitSensors(r.sensors, 25*time.Second); len(running) > 0 {
			r.fail("sensors %v did not finish within 25 s of the last fault (batches not acknowledged)", running)
		}
	}
	for _, s := range r.sensors {
		select {
		case <-s.done:
			if s.err != nil {
				r.fail("sensor %s: %v (every batch is acknowledged: it must exit 0)", s.src.id, s.err)
			}
		default:
		}
	}
	replayed := time.Since(started)
	// Every batch acknowledged: what is short now was lost by the collector, not
	// still on its way.
	allAcked := up && !slices.ContainsFunc(r.sensors, func(s *faultSensor) bool {
		select {
		case <-s.done:
			return s.err != nil
		default:
			return true
		}
	})

	// What the collector answers now, and again after one more SIGKILL and restart.
	var health healthAnswer
	var metrics []string
	answered := map[string][]oracle.Record{}
	if up {
		health, metrics = r.health(), r.damageMetrics()
		for _, src := range fx.sources {
			recs, err := r.restFlows(src.id)
			if err != nil {
				r.fail("%v", err)
			}
			answered[src.id] = recs
		}
		r.c.Kill()
		up = r.start()
	}
	if up {
		if running := waitSensors(r.sensors, 10*time.Second); len(running) > 0 {
			r.fail("sensors %v still not finished after the last restart", running)
		}
	}
	var before, after, short tally
	var extra []string
	exactAll := true
	for _, src := range fx.sources {
		var wt tally
		for _, w := range src.want {
			wt.flows++
			wt.packets += w.FwdPackets + w.RevPackets
			wt.bytes += w.FwdBytes + w.RevBytes
		}
		before.add(wt)
		if !up {
			continue
		}
		recs, err := r.restFlows(src.id)
		if err != nil {
			r.fail("%v", err)
			continue
		}
		got := oracle.Fold(src.want, recs)
		have, sh, ex := loss(src.want, got)
		after.add(have)
		short.add(sh)
		extra = append(extra, ex...)
		if err := oracle.Compare(src.want, got); err != nil {
			exactAll = false
			if len(r.damaged) == 0 {
				r.fail("%s: nothing was damaged, yet the flows differ from the oracle's: %v", src.id, err)
			}
		}
		if a, ok := answered[src.id]; ok && !sameFlows(got, oracle.Fold(src.want, a)) {
			_, was, _ := loss(src.want, oracle.Fold(src.want, a))
			r.fail("%s: the flows after the last restart differ from those answered before it (short before: %v; after: %v)", src.id, was, sh)
		}
	}
	if len(extra) > 0 {
		r.fail("%d flows larger than the oracle's or not in it (invented or doubled), e.g. %s", len(extra), extra[0])
	}
	if allAcked && short.packets+short.bytes > 0 && len(r.damaged) > 0 {
		named := slices.ContainsFunc(health.Reasons, func(s string) bool {
			return slices.ContainsFunc(r.damaged, func(d string) bool { return names(s, d, r.deleted) })
		})
		if !health.Incomplete || !named {
			r.fail("%d packets lost after damage to %v, but health does not say so: incomplete=%v reasons %q", short.packets, r.damaged, health.Incomplete, health.Reasons)
		}
		if r.snapOnly {
			var reported int
			for _, s := range health.Reasons {
				if m := damagedRecords.FindStringSubmatch(s); m != nil && strings.Contains(s, "snap-") {
					k, _ := strconv.Atoi(m[1])
					reported += k
				}
			}
			if reported < short.flows {
				r.fail("snapshot damage: %d flows short, but only %d records reported lost", short.flows, reported)
			}
		}
	}
	verdict := "PASS"
	if len(r.problems) > 0 {
		verdict = fmt.Sprintf("FAIL (%d)", len(r.problems))
	}
	exact := "exact"
	if !exactAll {
		exact = "not exact"
	}
	t.Logf("run %d: faults %s | before %v (%d sensors) | after %v (%s) | lost observed %v | reported incomplete=%v reasons=%q metrics=%q | %d starts, each ready (%s) | replay %v | %s",
		n, strings.Join(r.faults, ", "), before, len(fx.sources), after, exact, short, health.Incomplete, health.Reasons, metrics,
		r.starts, r.readyVia, replayed.Round(100*time.Millisecond), verdict)
}
