package netwatchv1_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"netwatch.dev/common/difftest"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// allMessages lists every message type declared in netwatch.v1.
func allMessages(t *testing.T) []protoreflect.MessageType {
	t.Helper()
	var out []protoreflect.MessageType
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		if mt.Descriptor().ParentFile().Package() == "netwatch.v1" {
			out = append(out, mt)
		}
		return true
	})
	// Make sure the registry really is the generated package's (and not empty).
	_ = netwatchv1.File_netwatch_v1_flow_proto
	require.GreaterOrEqual(t, len(out), 25, "netwatch.v1 messages registered")
	return out
}

// fill sets every field of m to a random, non-zero value (one random member of each
// oneof), recursing into messages up to depth 3.
func fill(r *rand.Rand, m protoreflect.Message, depth int) {
	chosen := map[protoreflect.FullName]protoreflect.FieldDescriptor{}
	oneofs := m.Descriptor().Oneofs()
	for i := 0; i < oneofs.Len(); i++ {
		oo := oneofs.Get(i)
		chosen[oo.FullName()] = oo.Fields().Get(r.IntN(oo.Fields().Len()))
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if oo := fd.ContainingOneof(); oo != nil && chosen[oo.FullName()] != fd {
			continue
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for n := 1 + r.IntN(3); n > 0; n-- {
				if fd.Kind() == protoreflect.MessageKind {
					if depth > 0 {
						fill(r, l.AppendMutable().Message(), depth-1)
					}
					continue
				}
				l.Append(scalar(r, fd))
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for n := 1 + r.IntN(3); n > 0; n-- {
				mp.Set(scalar(r, fd.MapKey()).MapKey(), scalar(r, fd.MapValue()))
			}
		case fd.Kind() == protoreflect.MessageKind:
			if depth > 0 {
				fill(r, m.Mutable(fd).Message(), depth-1)
			}
		default:
			m.Set(fd, scalar(r, fd))
		}
	}
}

func scalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if fd.ContainingMessage().FullName() == "google.protobuf.Timestamp" {
			return protoreflect.ValueOfInt32(r.Int32N(1e9)) // nanos in range
		}
		return protoreflect.ValueOfInt32(r.Int32() - 1<<30)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if fd.ContainingMessage().FullName() == "google.protobuf.Timestamp" {
			return protoreflect.ValueOfInt64(r.Int64N(4e9)) // a valid RFC 3339 year
		}
		return protoreflect.ValueOfInt64(r.Int64() - 1<<62)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(r.Uint32() | 1)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(r.Uint64() | 1<<63) // beyond float64 precision
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(r.Float64()*1e6 + 0.5)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(r.IntN(1000)) + 0.5)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString([]string{"eth0", "192.168.1.0/24", "ü\"<tag>", "x"}[r.IntN(4)])
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{byte(r.IntN(256)), 0, 1, 2})
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(1 + r.IntN(vals.Len()-1)).Number())
	}
	panic("unhandled kind " + fd.Kind().String())
}

// TestRoundTrip sends every netwatch.v1 message through the binary wire format and
// through protojson (the gRPC-JSON mapping) and expects it back unchanged.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, mt := range allMessages(t) {
		t.Run(string(mt.Descriptor().Name()), func(t *testing.T) {
			for run := 0; run < 20; run++ {
				msg := mt.New()
				fill(r, msg, 3)
				in := msg.Interface()

				bin, err := proto.Marshal(in)
				require.NoError(t, err)
				if msg.Descriptor().Fields().Len() > 0 {
					require.NotEmpty(t, bin, "a filled message encodes to something")
				}
				outBin := mt.New().Interface()
				require.NoError(t, proto.Unmarshal(bin, outBin))
				require.Empty(t, difftest.Diff(in, outBin), "binary round trip")

				js, err := protojson.Marshal(in)
				require.NoError(t, err)
				outJS := mt.New().Interface()
				require.NoError(t, protojson.Unmarshal(js, outJS), "%s", js)
				require.Empty(t, difftest.Diff(in, outJS), "protojson round trip of %s", js)
			}
		})
	}
}
