package flowmeta

import "testing"

func TestInDomain(t *testing.T) {
	for _, tc := range []struct {
		name, domain string
		want         bool
	}{
		{"example.com", "example.com", true},
		{"www.example.com", "example.com", true},
		{"a.b.example.com", "example.com", true},
		{"badexample.com", "example.com", false},
		{"example.com", "www.example.com", false},
		{"com", "example.com", false},
		{"example.com.evil", "example.com", false},
	} {
		if got := InDomain(tc.name, tc.domain); got != tc.want {
			t.Errorf("InDomain(%q, %q) = %v, want %v", tc.name, tc.domain, got, tc.want)
		}
	}
}
