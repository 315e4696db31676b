package netwatchv1_test

import (
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

func cmpDiff(want, got proto.Message) string { return cmp.Diff(want, got, protocmp.Transform()) }
