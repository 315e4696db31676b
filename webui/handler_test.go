package webui

import (
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, hdr map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.Host = "127.0.0.1:8080"
	for k, v := range hdr {
		if k == "Host" {
			r.Host = v
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestHandlerServesTheDashboard(t *testing.T) {
	h := Handler()
	resp := get(t, h, "/", nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<script type="module" src="js/app.js">`) {
		t.Fatalf("GET /: %d %s", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self';", "style-src 'self';", "connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("index.html Cache-Control %q, want no-cache", got)
	}

	// Revalidation: the ETag answers 304.
	if r2 := get(t, h, "/index.html", map[string]string{"If-None-Match": resp.Header.Get("ETag")}); r2.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", r2.StatusCode)
	}

	// Vendor files are cached for an hour; text is gzipped when accepted.
	r3 := get(t, h, "/vendor/chart.umd.js", map[string]string{"Accept-Encoding": "gzip, br"})
	if r3.Header.Get("Cache-Control") != "public, max-age=3600" || r3.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("vendor: Cache-Control %q, Content-Encoding %q", r3.Header.Get("Cache-Control"), r3.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(r3.Body)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(zr)
	want, _ := fs.ReadFile(FS(), "vendor/chart.umd.js")
	if string(js) != string(want) {
		t.Error("gzipped chart.umd.js differs from the file")
	}
	if !strings.HasPrefix(r3.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("Content-Type %q", r3.Header.Get("Content-Type"))
	}

	if r4 := get(t, h, "/nope.js", nil); r4.StatusCode != http.StatusNotFound {
		t.Errorf("missing file: %d", r4.StatusCode)
	}
	if r5 := get(t, h, "/../embed.go", nil); r5.StatusCode != http.StatusNotFound {
		t.Errorf("path escape: %d", r5.StatusCode)
	}
	if r6 := get(t, h, "/", map[string]string{"Host": "evil\"; script-src *"}); strings.Contains(r6.Header.Get("Content-Security-Policy"), "evil") {
		t.Error("Host header injected into the CSP")
	}
}
