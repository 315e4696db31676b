package api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// routeParams maps each GET path of the query service (from its google.api.http
// annotations) to the query parameters its request message accepts: every field's
// proto name and JSON name, which are what grpc-gateway reads. grpc-gateway ignores
// any other parameter; the API refuses them, so a typo ("src=" for "src_ip=") is a
// 400 naming it instead of a silently unfiltered answer.
func routeParams() map[string][]string {
	out := map[string][]string{}
	svc := netwatchv1.File_netwatch_v1_query_proto.Services().ByName("QueryService")
	for i := range svc.Methods().Len() {
		m := svc.Methods().Get(i)
		rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
		path := rule.GetGet()
		if path == "" {
			continue
		}
		var names []string
		fields := m.Input().Fields()
		for j := range fields.Len() {
			f := fields.Get(j)
			if strings.Contains(path, "{"+string(f.Name())+"}") {
				continue // a path parameter (/api/v1/hosts/{ip})
			}
			names = append(names, string(f.Name()))
			if f.JSONName() != string(f.Name()) {
				names = append(names, f.JSONName())
			}
		}
		slices.Sort(names)
		out[path] = names
	}
	return out
}

// route is the GET path of routes that path is: itself, or a template whose
// {parameters} each stand for one non-empty segment ("/api/v1/hosts/{ip}").
func route(routes map[string][]string, path string) (string, bool) {
	if _, ok := routes[path]; ok {
		return path, true
	}
	for tmpl := range routes {
		if strings.Contains(tmpl, "{") && matchTemplate(tmpl, path) {
			return tmpl, true
		}
	}
	return "", false
}

func matchTemplate(tmpl, path string) bool {
	t, p := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(t) != len(p) {
		return false
	}
	for i := range t {
		if strings.HasPrefix(t[i], "{") && strings.HasSuffix(t[i], "}") {
			if p[i] == "" {
				return false
			}
		} else if t[i] != p[i] {
			return false
		}
	}
	return true
}

// RouteRequests maps each GET path of the query service to its request message, for
// tests and tools that walk the API.
func RouteRequests() map[string]protoreflect.MessageDescriptor {
	out := map[string]protoreflect.MessageDescriptor{}
	svc := netwatchv1.File_netwatch_v1_query_proto.Services().ByName("QueryService")
	for i := range svc.Methods().Len() {
		m := svc.Methods().Get(i)
		if rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule); rule.GetGet() != "" {
			out[rule.GetGet()] = m.Input()
		}
	}
	return out
}

// checkParams answers 400 naming the first parameter that the endpoint does not
// know, or that is given more than once, before the request reaches the gateway.
// Paths that are not query-service routes pass through untouched.
func checkParams(routes map[string][]string, eh errorHandler, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, ok := route(routes, r.URL.Path)
		known := routes[path]
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		// r.URL.Query() drops every pair it cannot decode ("src_ip=10.0.0.1%", a bad
		// escape, a ';'), so such a filter would silently vanish from the answer.
		values, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			k := undecodableParam(r.URL.RawQuery)
			eh.write(w, r, http.StatusBadRequest, "INVALID_ARGUMENT", k+": the query string does not decode: "+err.Error(), map[string]string{"parameter": k})
			return
		}
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		slices.Sort(keys) // name the same parameter every time
		for _, k := range keys {
			if _, found := slices.BinarySearch(known, k); !found {
				msg := "unknown parameter"
				if len(known) > 0 {
					msg += "; this endpoint takes " + strings.Join(known, ", ")
				} else {
					msg += "; this endpoint takes none"
				}
				eh.write(w, r, http.StatusBadRequest, "INVALID_ARGUMENT", k+": "+msg, map[string]string{"parameter": k})
				return
			}
			if len(values[k]) > 1 {
				eh.write(w, r, http.StatusBadRequest, "INVALID_ARGUMENT", k+": given more than once", map[string]string{"parameter": k})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// undecodableParam names the first parameter of a raw query string whose name or value
// does not decode (as sent, when the name itself does not decode).
func undecodableParam(raw string) string {
	for _, pair := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(pair, "=")
		name, kerr := url.QueryUnescape(k)
		if kerr != nil {
			name = k
		}
		if _, verr := url.QueryUnescape(v); kerr != nil || verr != nil || strings.Contains(pair, ";") {
			return name
		}
	}
	return raw
}
