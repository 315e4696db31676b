package flowmeta

import "strings"

// InDomain reports whether name is domain or a name under it ("www.example.com"
// is in "example.com", "badexample.com" is not): the server_name and host
// filters' suffix match. Both are expected lower-case, without a final dot.
func InDomain(name, domain string) bool {
	return name == domain || len(name) > len(domain) && strings.HasSuffix(name, domain) && name[len(name)-len(domain)-1] == '.'
}
