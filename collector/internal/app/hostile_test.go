package app

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/api"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// The hostile-API test sends generated bad requests, written byte by byte on raw TCP
// connections (so they can be malformed in ways net/http's client refuses to send),
// to a real collector on loopback, and checks every answer.
//
// Every generated request carries at least one thing that makes it wrong: a parameter
// the endpoint does not take, a known parameter twice, a value the parameter refuses,
// no or a wrong token, a wrong method, a path that is not an endpoint, or a size over
// a limit. So the answer must be one of the refusals below; a 2xx means a bad request
// was served as if it were good, a 5xx or a dropped connection or no answer within
// hostileTimeout is a bug. The PRNG seed is printed; NETWATCH_HOSTILE_SEED=N replays
// a run, and the first offending request is printed in full
// (NETWATCH_HOSTILE_VERBOSE=1: every offending request, shortened).

const (
	hostileRequests = 10_000
	hostileWorkers  = 8
	hostileTimeout  = 10 * time.Second
	hostileToken    = "hostile-test-token"
)

// refusals are the answers a bad request may get.
var refusals = map[int]bool{
	http.StatusBadRequest: true, http.StatusUnauthorized: true, http.StatusNotFound: true,
	http.StatusMethodNotAllowed: true, http.StatusRequestEntityTooLarge: true, http.StatusRequestURITooLong: true,
	http.StatusTooManyRequests: true, http.StatusRequestHeaderFieldsTooLarge: true,
}

// wsPath is the live WebSocket. A request there that is not a WebSocket handshake is
// answered 426 Upgrade Required (RFC 9110 15.5.22: the right answer, and not a
// success), one with a foreign Origin 403: both are refusals at that path only.
const wsPath = "/api/v1/ws"

type hostileRequest struct {
	i    int
	why  string // what makes it bad
	path string // the decoded path it aims at, for the per-path refusals
	raw  []byte // the bytes on the wire
	// also are answers besides the refusals that are right for this request.
	also map[int]bool
	// truncated: the bytes are not a whole request (a TLS hello); the sender closes its
	// side after them, and the server may close without an answer.
	truncated bool
}

func (r *hostileRequest) String() string {
	raw := r.raw
	if len(raw) > 2048 {
		raw = append(raw[:2048:2048], fmt.Sprintf("... (%d bytes in all)", len(r.raw))...)
	}
	return fmt.Sprintf("request %d (%s):\n%q", r.i, r.why, raw)
}

type hostileResult struct {
	status   int
	ctype    string
	location string
	body     []byte
	err      error
	took     time.Duration
}

// Values each parameter refuses on every endpoint that takes it.
var badValues = map[string][]string{
	"limit":      {"0", "-1", "abc", "1e3", "1001", "99999999999999999999999", " 1", "0x10", "1.5", "%00", "NaN"},
	"offset":     {"-1", "x", "99999999999999999999", "1.0", "-9223372036854775808"},
	"port":       {"65536", "-1", "http", "80,443", "1e2", "99999999999999999999"},
	"protocol":   {"tcpx", "256", "-1", "6;DROP TABLE flows", "${jndi:ldap://x/a}", "tcp\x00"},
	"src_ip":     {"300.1.1.1", "10.0.0.0/33", "::g", "' OR 1=1--", "10.0.0.1/-1", "2001:db8::/129", "<script>alert(1)</script>", "10.0.0.1\r\nX: y"},
	"dst_ip":     {"256.256.256.256", "1.2.3", "fe80::/200", "..%2f..%2fetc%2fpasswd", "0x7f.1"},
	"time_start": {"noon", "2026-13-01", "2026-11-25T25:00:00Z", "0", "1700000000", "{{7*7}}", "2026-11-25 12:00"},
	"time_end":   {"yesterday", "2026-02-30", "-1", "9999999999999999999", "2026-11-25T12:00:00+25:00"},
	"status":     {"open", "1; rm -rf /", "ACTIVEX", "%s%s%s%n"},
	"sort_by":    {"name", "bytes;--", "src_ip", "../../"},
	"sort_order": {"up", "descending", "ASC DESC"},
	"format":     {"xml", "pdf", "csv;xml", "jsonp"},
	"q":          {"color:red", "port:", "port:1 port:2", "src_ip:999.1.1.1", ":", "protocol:tcpx", "' OR ''='"},
	"duration":   {"forever", "-5m", "5", "30s", "61m", "1e9h", "0"},
	"interval":   {"2s", "x", "0s", "-1s", "1h"},
	"by":         {"both", "src,dst", "../", "*"},
}

// Injection and junk strings for parameter values that accept anything (sensor) and
// for noise.
var junk = []string{
	"' OR 1=1--", "\"; DROP TABLE flows; --", "<script>alert(1)</script>", "${jndi:ldap://evil/a}",
	"../../../../etc/passwd", "%00", "%0d%0aSet-Cookie:%20x=y", "{{7*7}}", "%s%n%x", "\u202e\u200b",
	"%ff%fe%fd", "%c0%af", "%e2%82", "\xff\xfe", "A", "", "null", "[]", "{}", "-0", "1e309", "0x7fffffffffffffff",
	"%", "%%", "%zz", "%2", "+", " ", "\t", "%7f", "%01%02",
}

func hostileSeed(t *testing.T) uint64 {
	if s := os.Getenv("NETWATCH_HOSTILE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("NETWATCH_HOSTILE_SEED=%q: %v", s, err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// hostileGen makes the requests of one run from its seed.
type hostileGen struct {
	rng    *rand.Rand
	host   string
	routes map[string][]string // path -> parameters it takes: the query routes, the OpenAPI document, the WebSocket
	paths  []string            // sorted keys of routes
}

func newHostileGen(seed uint64, host string) *hostileGen {
	g := &hostileGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), host: host, routes: map[string][]string{}}
	for path, md := range api.RouteRequests() {
		var names []string
		for i := range md.Fields().Len() {
			names = append(names, string(md.Fields().Get(i).Name()))
		}
		g.routes[path] = names
	}
	g.routes[api.OpenAPIPath] = nil
	g.routes[wsPath] = nil
	for p := range g.routes {
		g.paths = append(g.paths, p)
	}
	slices.Sort(g.paths)
	return g
}

func (g *hostileGen) pick(s []string) string { return s[g.rng.IntN(len(s))] }

func (g *hostileGen) chance(p float64) bool { return g.rng.Float64() < p }

// randomBytes is n bytes of anything but CR and LF (which would end the line and turn
// the request into a different, simply malformed one: that is its own case).
func (g *hostileGen) randomBytes(n int) string {
	b := make([]byte, n)
	for i := range b {
		c := byte(g.rng.IntN(256))
		if c == '\r' || c == '\n' {
			c = 'x'
		}
		b[i] = c
	}
	return string(b)
}

// fieldBytes is n bytes a header value may hold (RFC 9110 5.5: visible ASCII, space,
// and obs-text 0x80-0xff, so bad UTF-8), none of them a control character: those make
// the request malformed, which is a case of its own.
func (g *hostileGen) fieldBytes(n int) string {
	b := make([]byte, n)
	for i := range b {
		c := byte(0x21 + g.rng.IntN(0xff-0x21))
		if c == 0x7f {
			c = '~'
		}
		b[i] = c
	}
	return string(b)
}

// encode spells a value in the query: properly escaped, raw (spaces become %20 so the
// request line stays three words, anything else as it is), or with broken escapes.
func (g *hostileGen) encode(v string) string {
	switch g.rng.IntN(4) {
	case 0, 1:
		return url.QueryEscape(v)
	case 2:
		// As it is, but for what would break the request line (controls and space, a
		// case of its own among the malformed requests): bytes >= 0x80 go raw.
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if c := v[i]; c <= ' ' || c == 0x7f || c == '#' {
				fmt.Fprintf(&b, "%%%02X", c)
			} else {
				b.WriteByte(c)
			}
		}
		return b.String()
	default:
		return url.QueryEscape(v) + g.pick([]string{"%", "%z", "%G1", "%ff", "%c3%28", "%e2%28%a1"})
	}
}

// noise is 0-3 parameters that may or may not be valid on path.
func (g *hostileGen) noise(path string) []string {
	var out []string
	for range g.rng.IntN(4) {
		names := g.routes[path]
		if len(names) == 0 {
			return out
		}
		name := g.pick(names)
		var v string
		switch g.rng.IntN(3) {
		case 0:
			if bad := badValues[name]; len(bad) > 0 {
				v = g.pick(bad)
			}
		case 1:
			v = g.pick(junk)
		default:
			v = strconv.Itoa(g.rng.IntN(2000) - 100)
		}
		out = append(out, url.QueryEscape(name)+"="+g.encode(v))
	}
	return out
}

// next builds request i.
func (g *hostileGen) next(i int) *hostileRequest {
	path := g.pick(g.paths)
	method := "GET"
	params := g.noise(path)
	headers := []string{"Authorization: Bearer " + hostileToken}
	var body []byte
	var why string
	switch kind := g.rng.IntN(100); {
	case kind < 25: // a known parameter with a value it refuses
		var takes []string
		for _, n := range g.routes[path] {
			if len(badValues[n]) > 0 {
				takes = append(takes, n)
			}
		}
		if len(takes) == 0 {
			path = "/api/v1/flows"
			takes = []string{"limit", "port", "src_ip", "status", "q"}
		}
		name := g.pick(takes)
		v := g.pick(badValues[name])
		why = "bad value for " + name
		params = append(params, url.QueryEscape(name)+"="+g.encode(v))
	case kind < 40: // a parameter the endpoint does not take
		name := g.pick([]string{"src", "srcip", "SRC_IP", "limit[]", "__proto__", "callback", "q ", "%00", "a%zzb", "",
			"\xff", "' OR 1=1", "x" + strings.Repeat("y", g.rng.IntN(3000)), g.randomBytes(1 + g.rng.IntN(20))})
		if slices.Contains(g.routes[path], name) {
			name += "_x"
		}
		why = fmt.Sprintf("unknown parameter %q", name)
		params = append(params, g.encode(name)+"="+g.encode(g.pick(junk)))
	case kind < 47: // a known parameter given twice
		if len(g.routes[path]) == 0 {
			path = "/api/v1/top-talkers"
		}
		name := g.pick(g.routes[path])
		why = "parameter twice: " + name
		params = append(params, name+"=1", name+"=2")
	case kind < 57: // no token, or a wrong one
		if path == "/api/v1/health" {
			path = "/api/v1/sensors"
		}
		why = "bad token"
		headers = headers[:0]
		if g.chance(0.6) {
			headers = append(headers, "Authorization: "+g.pick([]string{"Bearer wrong", "Bearer " + hostileToken + "x",
				"bearer " + hostileToken, "Basic " + hostileToken, "Bearer", "Bearer  " + hostileToken, "Bearer " + g.fieldBytes(40)}))
		}
	case kind < 65: // a method the API does not serve
		method = g.pick([]string{"POST", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND", "FOO"})
		why = "method " + method
		if g.chance(0.5) {
			body = []byte(g.randomBytes(g.rng.IntN(4096)))
			headers = append(headers, "Content-Type: application/json", "Content-Length: "+strconv.Itoa(len(body)))
		}
	case kind < 80: // a path that is no endpoint
		path = g.randomPath()
		why = "no such path"
	case kind < 85: // a URL longer than any header limit
		n := 70_000 + g.rng.IntN(1<<20)
		params = append(params, "q="+strings.Repeat("a", n))
		why = fmt.Sprintf("URL of %d bytes", n)
	case kind < 90: // headers over the limit
		why = "oversized headers"
		if g.chance(0.5) {
			headers = append(headers, "X-Big: "+strings.Repeat("b", 70_000+g.rng.IntN(200_000)))
		} else {
			for j := range 1500 + g.rng.IntN(3000) {
				headers = append(headers, fmt.Sprintf("X-H%d: %s", j, strings.Repeat("v", 40)))
			}
		}
	case kind < 93: // a malformed request line or header block
		why = "malformed request"
		switch g.rng.IntN(16) {
		case 0:
			// net/http answers an HTTP version it does not speak 505 (RFC 9110 15.6.6),
			// before any handler: a refusal of the protocol, not a server fault.
			return &hostileRequest{i: i, why: "unsupported HTTP version", path: path, also: map[int]bool{http.StatusHTTPVersionNotSupported: true},
				raw: []byte("GET /api/v1/flows?limit=5 HTTP/" + g.pick([]string{"9.9", "2.0", "3.0"}) + "\r\nHost: " + g.host + "\r\n\r\n")}
		case 1:
			// ... and a transfer coding it does not know 501 (RFC 9112 6.1).
			return &hostileRequest{i: i, why: "unknown transfer coding", path: path, also: map[int]bool{http.StatusNotImplemented: true},
				raw: []byte("GET /api/v1/flows HTTP/1.1\r\nHost: " + g.host + "\r\nTransfer-Encoding: " + g.pick([]string{"chunked, identity", "gzip, chunked", "x-hostile"}) + "\r\n\r\n")}
		case 2:
			return &hostileRequest{i: i, why: "TLS hello on the plaintext port", path: path, truncated: true,
				raw: []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + g.randomBytes(64))}
		case 3:
			// A chunked body (with a Content-Length beside it) that never comes: the
			// server reads it before answering, and gets the end of the stream.
			return &hostileRequest{i: i, why: "chunked body never sent", path: path, truncated: true,
				raw: []byte("GET /api/v1/flows HTTP/1.1\r\nHost: " + g.host + "\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")}
		}
		return &hostileRequest{i: i, why: why, path: path, raw: []byte(g.pick([]string{
			"GET /api/v1/flows HTTP/1.1\r\nHost: " + g.host + "\r\nBad Header Line\r\n\r\n",
			"GET /api/v1/flows?limit=5 HTTP/1.1.1\r\nHost: " + g.host + "\r\n\r\n",
			"GET  /api/v1/flows HTTP/1.1\r\nHost: " + g.host + "\r\n\r\n",
			"GET /api/v1/fl\x00ows HTTP/1.1\r\nHost: " + g.host + "\r\n\r\n",
			"GET /api/v1/flows HTTP/1.1\r\nHost: " + g.host + "\r\nContent-Length: -5\r\n\r\n",
			"GET /api/v1/flows HTTP/1.1\r\nHost: " + g.host + "\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
			"GET /api/v1/flows?limit=1\x00 HTTP/1.1\r\nHost: " + g.host + "\r\n\r\n",
			"GET /api/v1/flows HTTP/1.1\r\nHost: " + g.host + "\r\nX-Request-Id: a\x01\x7fb\r\n\r\n",
			"GET /api/v1/flows HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
			"GET /api/v1/flows HTTP/1.1\r\n\r\n",
			"GET http://[::1/api/v1/flows HTTP/1.1\r\nHost: " + g.host + "\r\n\r\n",
			"GET /api/v1/flows?limit=5 HTTP/1.1\r\nHost: " + g.host + "\r\nX-Bad\x7fName: 1\r\n\r\n",
			"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + g.randomBytes(32),
			g.randomBytes(1+g.rng.IntN(300)) + "\r\n\r\n",
		}))}
	default: // a body that says it is too large, on a path that takes none
		method = g.pick([]string{"POST", "PUT"})
		why = "huge declared body"
		headers = append(headers, "Content-Length: 10737418240")
	}

	// Go's ServeMux answers a path that is not clean ("/api/v1/sensors/../flows",
	// "%2e%2e", "//") with a redirect to its cleaned form, before any handler, token
	// check or parameter check: nothing is served until the client sends the clean
	// path. check accepts that redirect, to a path on this server, as a refusal.
	target := g.escapePath(path)
	if len(params) > 0 {
		g.rng.Shuffle(len(params), func(a, b int) { params[a], params[b] = params[b], params[a] })
		target += "?" + strings.Join(params, "&")
	}
	if g.chance(0.05) {
		target += "#frag"
	}
	var b bytes.Buffer
	// No "Connection: close": on a connection it keeps, net/http reads what is left of
	// a body it did not want before the next request; on one it closes, it may leave
	// the body unread and the kernel then answers it with a reset that can overtake
	// the response. The sender closes after one response either way.
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, g.host)
	if g.chance(0.1) {
		headers = append(headers, "X-Request-Id: "+g.pick([]string{strings.Repeat("r", 65+g.rng.IntN(100)), "\xff\xfe\"}", "<script>", g.fieldBytes(20)}))
	}
	if g.chance(0.05) {
		headers = append(headers, "Origin: https://evil.example")
	}
	if g.chance(0.05) {
		headers = append(headers, "Accept-Encoding: gzip, deflate, br, zstd, "+strings.Repeat("x,", 100))
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return &hostileRequest{i: i, why: why, path: path, raw: b.Bytes()}
}

// randomPath is a path under /api/v1 that is no endpoint: random segments, traversal,
// encoded separators, bad escapes, very long.
func (g *hostileGen) randomPath() string {
	for {
		var p string
		switch g.rng.IntN(8) {
		case 0:
			p = "/api/v1/" + g.pick([]string{"flow", "flows/1", "flows/", "Flows", "topTalkers", "metrics/", "metrics/history/x",
				"sensors/../flows", "health/", "ws/x", "openapi.yaml", "admin", ".env", ".git/config", "v2", ""})
		case 1:
			p = "/api/v1/" + g.randomBytes(1+g.rng.IntN(30))
		case 2:
			p = "/api/v1/" + strings.Repeat("a/", g.rng.IntN(2000))
		case 3:
			p = "/api/v1/%2e%2e/%2e%2e/etc/passwd"
		case 4:
			p = "/api/v1/flows%2fx"
		case 5:
			p = "/api/v1/" + g.pick([]string{"%zz", "%", "%c0%ae%c0%ae/", "%ff", "%00", "x%20y", "%u0041"})
		case 6:
			p = "/api/v1/" + strings.Repeat("x", 1000+g.rng.IntN(60_000))
		default:
			p = "/api/v1/" + g.pick(g.paths)[len("/api/v1/"):] + "/" + g.randomBytes(1+g.rng.IntN(8))
		}
		if _, known := g.routes[p]; !known && p != wsPath {
			return p
		}
	}
}

// escapePath writes path in the request target: printable ASCII stays (percent signs
// too, so broken escapes reach the server), anything else is escaped.
func (g *hostileGen) escapePath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c > ' ' && c < 0x7f && c != '?' && c != '#' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// send writes raw on a new connection and reads one response.
func send(addr string, raw []byte, truncated bool) hostileResult {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", addr, hostileTimeout)
	if err != nil {
		return hostileResult{err: err}
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(hostileTimeout))
	// Write while reading: a server that answers an oversized request before reading
	// it all stops reading, and a blocked write must not hide its answer.
	go func() {
		if _, err := conn.Write(raw); err == nil && truncated {
			conn.(*net.TCPConn).CloseWrite()
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return hostileResult{err: err, took: time.Since(start)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return hostileResult{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), location: resp.Header.Get("Location"),
		body: body, err: err, took: time.Since(start)}
}

// check says what is wrong with the answer to r, or "".
func check(r *hostileRequest, res hostileResult) string {
	switch {
	case res.err != nil && r.truncated && (errors.Is(res.err, io.EOF) || errors.Is(res.err, io.ErrUnexpectedEOF)):
		return "" // closed: there was no request to answer
	case res.err != nil:
		return fmt.Sprintf("no answer: %v (after %v)", res.err, res.took.Round(time.Millisecond))
	case refusals[res.status], r.also[res.status]:
	case r.path == wsPath && (res.status == http.StatusUpgradeRequired || res.status == http.StatusForbidden):
	case res.status == http.StatusTemporaryRedirect || res.status == http.StatusMovedPermanently || res.status == http.StatusPermanentRedirect:
		// Only for a path that is not clean, and only to a path on this server (no
		// open redirect).
		p, err := url.PathUnescape(r.path)
		if err != nil {
			p = r.path
		}
		u, err := url.Parse(res.location)
		if p == path.Clean(p) || err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(res.location, "/") || strings.HasPrefix(res.location, "//") {
			return fmt.Sprintf("status %d to %q for %q", res.status, res.location, r.path)
		}
	default:
		return fmt.Sprintf("status %d: %s", res.status, bytes.TrimSpace(res.body))
	}
	// The API's own refusals carry the documented JSON error body (net/http's early ones, for
	// unparseable requests, are plain text).
	if strings.HasPrefix(res.ctype, "application/json") {
		var e struct {
			Error struct {
				Code, Message string
			} `json:"error"`
		}
		if err := json.Unmarshal(res.body, &e); err != nil || e.Error.Code == "" {
			return fmt.Sprintf("status %d with a body that is not the error object (%v): %q", res.status, err, res.body)
		}
	}
	return ""
}

// TestHostileRequests: 10,000 generated bad or hostile requests to a real collector on
// loopback (with a token, without a rate limit so they reach the parsers; the rate
// limit has its own phase). Every answer is a 4xx refusal with the error body, never
// a 2xx, a 5xx, a dropped connection or a hang; the collector still serves afterwards
// and its goroutines come back down.
func TestHostileRequests(t *testing.T) {
	seed := hostileSeed(t)
	t.Logf("seed %d (replay: NETWATCH_HOSTILE_SEED=%d go test -run TestHostileRequests ./internal/app)", seed, seed)
	n := hostileRequests
	if testing.Short() {
		n = 2000
	}
	c := startCollector(t, func(cfg *Config) { cfg.AuthToken, cfg.RateLimit = hostileToken, api.RateLimit{} })
	seedFlows(c, 2000)
	addr := c.HTTPAddr()
	before := runtime.NumGoroutine()

	gen := newHostileGen(seed, addr)
	reqs := make([]*hostileRequest, n)
	for i := range reqs {
		reqs[i] = gen.next(i)
	}
	results := make([]hostileResult, n)
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range hostileWorkers {
		wg.Go(func() {
			for i := range next {
				results[i] = send(addr, reqs[i].raw, reqs[i].truncated)
			}
		})
	}
	for i := range reqs {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)

	byStatus := map[int]int{}
	var slowest time.Duration
	bad := 0
	for i, r := range reqs {
		byStatus[results[i].status]++
		slowest = max(slowest, results[i].took)
		if msg := check(r, results[i]); msg != "" {
			if os.Getenv("NETWATCH_HOSTILE_VERBOSE") != "" {
				m := msg
				if len(m) > 150 {
					m = m[:150]
				}
				raw := r.raw
				if len(raw) > 200 {
					raw = raw[:200]
				}
				t.Logf("offending %d (%s): %s: %q", i, r.why, m, raw)
			}
			if bad == 0 {
				t.Errorf("seed %d: first offending %v\nanswer: %s", seed, r, msg)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("seed %d: %d of %d answers were not refusals", seed, bad, n)
	}
	t.Logf("%d requests in %v (slowest %v), by status: %v", n, elapsed.Round(time.Millisecond), slowest.Round(time.Millisecond), byStatus)

	// Still serving: health, a real query, metrics.
	for _, p := range []string{"/api/v1/health", "/api/v1/flows?limit=5", "/metrics"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+p, nil)
		req.Header.Set("Authorization", "Bearer "+hostileToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("after the hostile requests, GET %s: %v", p, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("after the hostile requests, GET %s: %d", p, resp.StatusCode)
		}
	}
	// No goroutine is left behind by the requests (connections closed, handlers done).
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before+5 {
		t.Errorf("%d goroutines after the hostile requests, %d before", g, before)
	}
}

// TestHostileRequestsRateLimited: with the default per-client limit, a burst of bad
// requests is refused 429 with Retry-After once the allowance is spent, and health
// answers afterwards from another client address.
func TestHostileRequestsRateLimited(t *testing.T) {
	c := startCollector(t, func(cfg *Config) { cfg.AuthToken, cfg.RateLimit = hostileToken, api.RateLimit{Remote: 100, Local: 50} })
	addr := c.HTTPAddr()
	gen := newHostileGen(1, addr)
	limited := 0
	for i := range 200 {
		r := gen.next(i)
		res := send(addr, r.raw, r.truncated)
		if msg := check(r, res); msg != "" {
			t.Fatalf("%v\nanswer: %s", r, msg)
		}
		if res.status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Errorf("200 requests against a limit of 50 a minute: none was refused 429")
	}
	res := send(addr, []byte("GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), false)
	if res.err != nil || (res.status != http.StatusOK && res.status != http.StatusTooManyRequests) {
		t.Errorf("health after the burst: %d %v", res.status, res.err)
	}
}

// seedFlows stores n flows so the queries have something to filter, sort and page.
func seedFlows(c *Collector, n int) {
	now := time.Now()
	var ds []*netwatchv1.FlowDelta
	for i := range n {
		ds = append(ds, &netwatchv1.FlowDelta{
			Key: &netwatchv1.FlowKey{Protocol: []uint32{6, 17, 1, 58}[i%4],
				SrcAddr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).AsSlice(), SrcPort: uint32(1024 + i%60000),
				DstAddr: netip.MustParseAddr("2001:db8::1").AsSlice(), DstPort: 443},
			SrcPackets: uint64(i + 1), SrcBytes: uint64(100 * (i + 1)), DstPackets: 1, DstBytes: 60,
			FirstSeen: timestamppb.New(now.Add(-time.Duration(i) * time.Second)), LastSeen: timestamppb.New(now),
			Status: netwatchv1.FlowStatus(1 + i%3),
		})
	}
	c.store.Apply("hostile-sensor", ds, now)
}

// TestUndecodableQueryIs400: a query string with a pair that does not decode (a bad
// escape, a stray '%', a ';') is refused naming the parameter. Found by
// TestHostileRequests: r.URL.Query() drops such a pair, so /api/v1/health?x=%zz was a
// 200 and /api/v1/flows?format=csv&src_ip=10.0.0.1% downloaded every flow, unfiltered.
func TestUndecodableQueryIs400(t *testing.T) {
	c := startCollector(t, func(cfg *Config) { cfg.RateLimit = api.RateLimit{} })
	seedFlows(c, 10)
	for _, tc := range []struct{ query, param string }{
		{"/api/v1/health?callback=%zz", "callback"},
		{"/api/v1/sensors?a%zzb=1", "a%zzb"},
		{"/api/v1/flows?src_ip=10.0.0.1%25", "src_ip"}, // a valid escape: "10.0.0.1%" is a bad address
		{"/api/v1/flows?format=csv&src_ip=10.0.0.1%", "src_ip"},
		{"/api/v1/flows?limit=5&port=80%G1", "port"},
		{"/api/v1/top-talkers?limit=5;duration=5m", "limit"},
		{"/api/v1/openapi.json?%", "%"},
	} {
		res := send(c.HTTPAddr(), []byte("GET "+tc.query+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), false)
		if res.err != nil || res.status != http.StatusBadRequest {
			t.Errorf("%s: %d %v: %s", tc.query, res.status, res.err, res.body)
			continue
		}
		var e struct {
			Error struct {
				Details map[string]string `json:"details"`
			} `json:"error"`
		}
		if err := json.Unmarshal(res.body, &e); err != nil {
			t.Errorf("%s: %v: %s", tc.query, err, res.body)
		} else if want := tc.param; want != "" && e.Error.Details["parameter"] != want {
			t.Errorf("%s: names %q, want %q: %s", tc.query, e.Error.Details["parameter"], want, res.body)
		}
	}
}
