package api

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestRouteOfATemplatePath: a path-template route (/api/v1/hosts/{ip}) is found for
// the paths it stands for, one non-empty segment per parameter, and takes its query
// parameters only (not the path parameter).
func TestRouteOfATemplatePath(t *testing.T) {
	routes := routeParams()
	assert.Equal(t, []string{"duration", "limit"}, routes["/api/v1/hosts/{ip}"])
	for _, tc := range []struct {
		name, path, want string
		ok               bool
	}{
		{"fixed path", "/api/v1/flows", "/api/v1/flows", true},
		{"ipv4 host", "/api/v1/hosts/10.0.0.1", "/api/v1/hosts/{ip}", true},
		{"ipv6 host", "/api/v1/hosts/2001:db8::1", "/api/v1/hosts/{ip}", true},
		{"anything in the segment", "/api/v1/hosts/not-an-ip", "/api/v1/hosts/{ip}", true},
		{"empty segment", "/api/v1/hosts/", "", false},
		{"extra segment", "/api/v1/hosts/10.0.0.1/x", "", false},
		{"no segment", "/api/v1/hosts", "", false},
		{"unknown path", "/api/v1/nope", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := route(routes, tc.path)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}
