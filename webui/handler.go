package webui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

// CSP is the dashboard's Content-Security-Policy: everything from the collector
// itself, no inline script or style (the first design allowed 'unsafe-inline'; the
// dashboard needs none), no plugins, no framing. connect-src is added per request: the page's
// origin and WebSockets to the same host, spelled out for browsers where 'self' does
// not cover ws:.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// cspFor is CSP with connect-src for the request's host (left out when the Host
// header holds anything but host[:port] characters, so it cannot inject).
func cspFor(host string) string {
	connect := "; connect-src 'self'"
	ok := host != "" && len(host) <= 255
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)) {
			ok = false
		}
	}
	if ok {
		connect += " ws://" + host + " wss://" + host
	}
	return CSP + connect
}

// asset is one file, with its gzip form when that is smaller.
type asset struct {
	body, gz []byte
	etag     string
	ctype    string
}

// Handler serves the dashboard: strong ETags on every file; index.html and the
// dashboard's own modules are revalidated on every load (Cache-Control: no-cache,
// answered 304 while unchanged) so an upgraded collector never mixes old and new
// modules; the pinned vendor files are cached for an hour. Text is
// served gzipped to clients that accept it. Every response carries the CSP.
func Handler() http.Handler {
	files := FS()
	var (
		mu    sync.Mutex
		cache = map[string]*asset{}
	)
	load := func(name string) (*asset, error) {
		mu.Lock()
		defer mu.Unlock()
		if a, ok := cache[name]; ok {
			return a, nil
		}
		body, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		a := &asset{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, ctype: mime.TypeByExtension(path.Ext(name))}
		if a.ctype == "" {
			a.ctype = http.DetectContentType(body)
		}
		if compressible(a.ctype) {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(body)
			_ = zw.Close()
			if buf.Len() < len(body) {
				a.gz = buf.Bytes()
			}
		}
		cache[name] = a
		return a, nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", cspFor(r.Host))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		a, err := load(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", a.ctype)
		h.Set("ETag", a.etag)
		h.Add("Vary", "Accept-Encoding")
		if strings.HasPrefix(name, "vendor/") {
			h.Set("Cache-Control", "public, max-age=3600")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		body := a.body
		if a.gz != nil && acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			body = a.gz
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.Contains(ctype, "javascript") ||
		strings.Contains(ctype, "json") || strings.Contains(ctype, "svg")
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
