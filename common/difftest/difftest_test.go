package difftest

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

func TestDiffComparesMessagesByContent(t *testing.T) {
	a := &netwatchv1.NetworkFlow{SrcIp: "10.0.0.1", Bytes: 10, FirstSeen: timestamppb.New(timestamppb.Now().AsTime())}
	b := &netwatchv1.NetworkFlow{SrcIp: "10.0.0.1", Bytes: 10, FirstSeen: a.FirstSeen}
	_ = a.String() // gives a internal state b lacks: reflect.DeepEqual would differ
	if d := Diff(a, b); d != "" {
		t.Fatalf("equal messages differ:\n%s", d)
	}
	b.Bytes = 11
	d := Diff([]*netwatchv1.NetworkFlow{a}, []*netwatchv1.NetworkFlow{b})
	if !strings.Contains(d, "-") || !strings.Contains(d, "bytes") {
		t.Fatalf("the difference does not name the field:\n%s", d)
	}
}
