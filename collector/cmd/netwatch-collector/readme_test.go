package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/encoding/protojson"

	"netwatch.dev/common/testproc"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// TestReadmeAPIExamplesAnswerOnTheDemo runs what `make demo` runs (deploy/local/run.sh:
// the collector with memory only, a sensor replaying the demo capture with its
// timestamps moved to now; here at full speed and once instead of at 1x in a loop),
// then every command of the README's "## API" sh block against it: each curl and
// grpcurl line must answer with data (at least one flow, talker, history point or
// sensor), so a reader who copies them onto the demo sees something. The lines that
// need a token or TLS are left out, saying so.
func TestReadmeAPIExamplesAnswerOnTheDemo(t *testing.T) {
	root, err := filepath.Abs("../../..")
	require.NoError(t, err)
	lines := readmeAPICommands(t, filepath.Join(root, "README.md"))
	pcap := demoCapture(t, filepath.Join(root, "deploy/local/run.sh"))

	dir := t.TempDir()
	collector, err := testproc.Build(dir, "netwatch.dev/collector/cmd/netwatch-collector")
	require.NoError(t, err)
	sensor, err := testproc.Build(dir, "netwatch.dev/sensor/cmd/netwatch-sensor")
	require.NoError(t, err)
	grpcAddr, httpAddr := testproc.FreeAddr(t), testproc.FreeAddr(t)
	var clog strings.Builder
	c := exec.Command(collector, "--grpc-listen", grpcAddr, "--http-listen", httpAddr, "--data-dir", "")
	c.Stdout, c.Stderr = &clog, &clog
	require.NoError(t, c.Start())
	t.Cleanup(func() {
		c.Process.Kill()
		c.Wait()
		if t.Failed() {
			t.Logf("collector log:\n%s", clog.String())
		}
	})
	require.Eventually(t, func() bool {
		for _, a := range []string{grpcAddr, httpAddr} {
			conn, err := net.Dial("tcp", a)
			if err != nil {
				return false
			}
			conn.Close()
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "collector listening")
	// Without --loop the sensor exits once every batch is acknowledged: the data is
	// all in when it returns.
	s := exec.Command(sensor, "--read", filepath.Join(root, pcap), "--speed", "max", "--rebase-time", "--sensor-id", "demo",
		"--collector", grpcAddr, "--metrics-listen", "")
	out, err := s.CombinedOutput()
	require.NoError(t, err, "sensor: %s", out)

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ran := 0
	for _, line := range lines {
		words := shellWords(t, line)
		switch {
		case strings.Contains(line, "$TOKEN") || strings.Contains(line, "https://"):
			t.Logf("not run (needs a token or TLS, which the demo has not): %s", line)
			continue
		case words[0] == "curl":
			t.Run(line, func(t *testing.T) { checkCurl(t, words, httpAddr) })
		case words[0] == "grpcurl":
			t.Run(line, func(t *testing.T) { checkGrpcurl(t, words, grpcAddr, conn) })
		default:
			t.Fatalf("README API line %q: neither curl nor grpcurl; teach this test to check it", line)
		}
		ran++
	}
	require.GreaterOrEqual(t, ran, 8, "the README's API block lost its examples? %q", lines)
}

// readmeAPICommands is the command lines of the first sh block under "## API",
// without comment lines and trailing comments.
func readmeAPICommands(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	_, api, ok := strings.Cut(string(b), "\n## API\n")
	require.True(t, ok, "README.md has no \"## API\" section")
	api, _, _ = strings.Cut(api, "\n## ")
	_, block, ok := strings.Cut(api, "```sh\n")
	require.True(t, ok, "the API section has no ```sh block")
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok, "the API section's sh block is not closed")
	var out []string
	for _, l := range strings.Split(block, "\n") {
		if i := strings.Index(l, "  #"); i >= 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// demoCapture is the capture `make demo` replays (run.sh's NETWATCH_DEMO_PCAP default).
func demoCapture(t *testing.T, runSh string) string {
	t.Helper()
	b, err := os.ReadFile(runSh)
	require.NoError(t, err)
	m := regexp.MustCompile(`NETWATCH_DEMO_PCAP:-([^}]+)}`).FindSubmatch(b)
	require.NotNil(t, m, "%s names no default NETWATCH_DEMO_PCAP", runSh)
	return string(m[1])
}

// shellWords splits a command line as sh does for the README's lines: words
// separated by blanks, '...' and "..." quoting (no expansion).
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; ch {
		case ' ', '\t':
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		case '\'', '"':
			j := strings.IndexByte(line[i+1:], ch)
			require.GreaterOrEqual(t, j, 0, "unbalanced quote in %q", line)
			w.WriteString(line[i+1 : i+1+j])
			i, inWord = i+1+j, true
		default:
			w.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	require.NotEmpty(t, words, "empty command")
	return words
}

// checkCurl fetches the URL of a curl line (localhost:8080 is the collector under
// test) and checks that it answers 200 with data.
func checkCurl(t *testing.T, words []string, httpAddr string) {
	var url string
	for _, w := range words[1:] {
		if strings.Contains(w, "localhost:8080") {
			url = "http://" + strings.Replace(strings.TrimPrefix(w, "http://"), "localhost:8080", httpAddr, 1)
		}
	}
	require.NotEmpty(t, url, "no localhost:8080 URL in %q", words)
	path := strings.TrimPrefix(url, "http://"+httpAddr)
	path, query, _ := strings.Cut(path, "?")
	list := map[string]string{
		"/api/v1/flows": "flows", "/api/v1/top-talkers": "top_talkers", "/api/v1/metrics/history": "metrics", "/api/v1/sensors": "sensors",
		"/api/v1/protocols": "protocols",
	}
	field, ok := list[path]
	require.True(t, ok || path == "/api/v1/health", "no check for %s: teach this test what a non-empty answer is", path)
	// The metrics history gains a point a second after the collector starts (its
	// resolution): ask again until the answer has data, then judge the last one.
	var body []byte
	answered := func() bool {
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		switch {
		case strings.Contains(query, "format=csv"):
			return len(strings.Split(strings.TrimSpace(string(body)), "\n")) > 1 // a header and a flow
		case path == "/api/v1/health":
			var v struct{ Status string }
			return json.Unmarshal(body, &v) == nil && v.Status != ""
		}
		var v map[string]json.RawMessage
		var items []json.RawMessage
		return json.Unmarshal(body, &v) == nil && json.Unmarshal(v[field], &items) == nil && len(items) > 0
	}
	for deadline := time.Now().Add(10 * time.Second); path == "/api/v1/metrics/history" && !answered() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	require.True(t, answered(), "no data on the demo: %.600s", body)
}

// checkGrpcurl does what a grpcurl line asks, with this module's client: list (the
// server's reflection must name the query service) or a QueryService call with the
// line's -d JSON, which must return at least one flow.
func checkGrpcurl(t *testing.T, words []string, grpcAddr string, conn *grpc.ClientConn) {
	var data string
	var rest []string
	for i := 1; i < len(words); i++ {
		switch w := words[i]; {
		case w == "-d" && i+1 < len(words):
			data, i = words[i+1], i+1
		case strings.HasPrefix(w, "-"):
		case strings.Contains(w, "localhost:9090"):
		default:
			rest = append(rest, w)
		}
	}
	require.Len(t, rest, 1, "grpcurl line %q: want one verb or method", words)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch rest[0] {
	case "list":
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		require.NoError(t, err)
		require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: ""}}))
		resp, err := stream.Recv()
		require.NoError(t, err)
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		require.Contains(t, names, "netwatch.v1.QueryService")
	case "netwatch.v1.QueryService/ListFlows":
		req := &netwatchv1.ListFlowsRequest{}
		require.NoError(t, protojson.Unmarshal([]byte(data), req), "-d %s", data)
		resp, err := netwatchv1.NewQueryServiceClient(conn).ListFlows(ctx, req)
		require.NoError(t, err)
		require.NotEmpty(t, resp.GetFlows(), "ListFlows %s is empty on the demo data", data)
	default:
		t.Fatalf("no check for grpcurl %s: teach this test what a non-empty answer is", rest[0])
	}
}
