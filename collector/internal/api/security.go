package api

import (
	"net/http"
	"slices"
	"strings"
)

// cspBase is the Content-Security-Policy Netwatch was first specified with ("default-src 'self'; script-src
// 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'") tightened where it costs
// the dashboard nothing: no plugins, no framing, no foreign base or form targets,
// images from the page or data: URLs (chart exports). connect-src is added per request.
const cspBase = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders sets the CSP and the usual hardening headers on every response.
// connect-src allows the page's own origin for fetch and, spelled out, ws:// and
// wss:// to the same host: 'self' covers same-origin WebSockets only in browsers that
// implement CSP level 3 that way, and "ws: wss:" would allow any host.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		connect := "connect-src 'self'"
		if validHost(r.Host) {
			connect += " ws://" + r.Host + " wss://" + r.Host
		}
		h.Set("Content-Security-Policy", cspBase+"; "+connect)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/metrics" {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// validHost accepts host[:port] made of the characters of DNS names, IPv4 and
// bracketed IPv6 literals, so a Host header cannot inject into the CSP.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// cors allows the listed origins (exact "scheme://host[:port]" strings) to call the
// API from their pages. With none, no Access-Control-* header is ever sent, so
// browsers keep the API same-origin. A preflight from an allowed origin is answered
// here (204); one from any other origin gets no CORS headers and a 403.
func cors(origins []string, eh errorHandler, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		w.Header().Add("Vary", "Origin")
		allowed := origin != "" && slices.Contains(origins, origin)
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", "Retry-After, X-Request-Id, Content-Disposition")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed {
				eh.write(w, r, http.StatusForbidden, "PERMISSION_DENIED", "origin "+origin+" is not allowed", nil)
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, X-Request-Id")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
