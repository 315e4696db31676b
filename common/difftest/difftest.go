// Package difftest is the tests' one way to compare whole values: go-cmp with
// protocmp, so protobuf messages compare by content (reflect.DeepEqual and
// testify's Equal look at their internal state) and a failure shows what differs,
// field by field, instead of two dumps.
package difftest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
)

// Diff is cmp.Diff(want, got) with protobuf messages compared by content and opts
// added: empty when equal, otherwise "-want +got" lines.
func Diff(want, got any, opts ...cmp.Option) string {
	return cmp.Diff(want, got, append([]cmp.Option{protocmp.Transform()}, opts...)...)
}

// Equal fails t (and stops the test) with the differences when got is not want.
func Equal(t testing.TB, want, got any, opts ...cmp.Option) {
	t.Helper()
	if d := Diff(want, got, opts...); d != "" {
		t.Fatalf("mismatch (-want +got):\n%s", d)
	}
}
