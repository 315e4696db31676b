// Package restjson writes netwatch.v1 messages as the JSON of the REST API.
//
// protojson is right for gRPC-JSON but not for the /api/v1 REST API, whose JSON
// existing tooling depends on: protojson writes 64-bit integers as strings, enums as
// their full value names and omits zero values. This encoder walks the message with
// protoreflect and writes:
//   - every field, under its json_name (the REST names are set in the .proto files),
//     with zero values included so clients always see every key;
//   - 64-bit integers as JSON numbers;
//   - enums as the lower-case value name without the enum's prefix, '_' as '-'
//     (FLOW_STATUS_ACTIVE → "active", END_REASON_IDLE_TIMEOUT → "idle-timeout"),
//     and the UNSPECIFIED value as "";
//   - google.protobuf.Timestamp as RFC 3339 in UTC (null when unset);
//   - bytes as standard base64, maps as objects, unset messages as null.
//
// Flows have one view, Flow (flow.go), that both binaries fill and every flow
// encoding is made from: Proto (the gRPC message), AppendFlow (this JSON, for the
// sensor's --output jsonl, the WebSocket and REST) and AppendFlowCSV (the CSV
// download). Marshal writes the NetworkFlow messages that Proto built with
// AppendFlow, the same bytes as field by field, without reflection.
//
// It only encodes: every REST endpoint is a GET whose parameters come from the URL.
package restjson

import (
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// Marshal returns the REST JSON of m.
func Marshal(m proto.Message) []byte {
	return Append(nil, m)
}

// Append appends the REST JSON of m to b.
func Append(b []byte, m proto.Message) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	return appendMessage(b, m.ProtoReflect())
}

var (
	timestampName   = (&timestamppb.Timestamp{}).ProtoReflect().Descriptor().FullName()
	networkFlowName = (&netwatchv1.NetworkFlow{}).ProtoReflect().Descriptor().FullName()
)

// flowJSONSize is about the length of a NetworkFlow's JSON (IPv4, recent times,
// empty names: the identity and enrichment fields add some 200 bytes to the 480 of
// the others).
const flowJSONSize = 700

func appendMessage(b []byte, m protoreflect.Message) []byte {
	if !m.IsValid() {
		return append(b, "null"...)
	}
	if m.Descriptor().FullName() == timestampName {
		return appendTimestamp(b, m)
	}
	if nf, ok := m.Interface().(*netwatchv1.NetworkFlow); ok {
		// The flow encoder writes the same bytes (a test holds them equal) many
		// times faster: REST answers carry up to a thousand flows.
		if f, ok := FlowFromProto(nf); ok {
			return AppendFlow(b, &f)
		}
	}
	return appendFields(b, m)
}

// appendFields writes m field by field.
func appendFields(b []byte, m protoreflect.Message) []byte {
	b = append(b, '{')
	fields := m.Descriptor().Fields()
	first := true
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.ContainingOneof() != nil && !m.Has(fd) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, fd.JSONName())
		b = append(b, ':')
		b = appendField(b, fd, m.Get(fd), m.Has(fd))
	}
	return append(b, '}')
}

func appendField(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value, has bool) []byte {
	switch {
	case fd.IsList():
		l := v.List()
		if fd.Message() != nil && fd.Message().FullName() == networkFlowName {
			// A page of flows is large: growing the buffer by appends copied
			// it several times over, more time than encoding the flows.
			b = slices.Grow(b, l.Len()*flowJSONSize)
		}
		b = append(b, '[')
		for i := 0; i < l.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSingular(b, fd, l.Get(i), true)
		}
		return append(b, ']')
	case fd.IsMap():
		mp := v.Map()
		keys := make([]protoreflect.MapKey, 0, mp.Len())
		mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			keys = append(keys, k)
			return true
		})
		slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k.String())
			b = append(b, ':')
			b = appendSingular(b, fd.MapValue(), mp.Get(k), true)
		}
		return append(b, '}')
	}
	return appendSingular(b, fd, v, has)
}

func appendSingular(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value, has bool) []byte {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.AppendInt(b, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.AppendUint(b, v.Uint(), 10)
	case protoreflect.FloatKind:
		return appendFloat(b, v.Float(), 32)
	case protoreflect.DoubleKind:
		return appendFloat(b, v.Float(), 64)
	case protoreflect.StringKind:
		return appendString(b, v.String())
	case protoreflect.BytesKind:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.Bytes())
		return append(b, '"')
	case protoreflect.EnumKind:
		return appendString(b, EnumString(fd.Enum(), v.Enum()))
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if !has {
			return append(b, "null"...)
		}
		return appendMessage(b, v.Message())
	}
	return append(b, "null"...)
}

// EnumString is the REST spelling of an enum value: FLOW_STATUS_ACTIVE → "active",
// END_REASON_IDLE_TIMEOUT → "idle-timeout", *_UNSPECIFIED → "". Unknown numbers are
// written as their decimal value.
func EnumString(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	vd := ed.Values().ByNumber(n)
	if vd == nil {
		return strconv.Itoa(int(n))
	}
	name := strings.TrimPrefix(string(vd.Name()), enumPrefix(ed))
	if name == "UNSPECIFIED" {
		return ""
	}
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// EnumValue is the inverse of EnumString; ok is false for names the enum lacks.
func EnumValue(ed protoreflect.EnumDescriptor, s string) (n protoreflect.EnumNumber, ok bool) {
	if s == "" {
		return 0, false
	}
	name := enumPrefix(ed) + strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	vd := ed.Values().ByName(protoreflect.Name(name))
	if vd == nil || strings.HasSuffix(name, "_UNSPECIFIED") {
		return 0, false
	}
	return vd.Number(), true
}

// enumPrefix turns FlowStatus into "FLOW_STATUS_", the prefix buf's STANDARD lint requires.
func enumPrefix(ed protoreflect.EnumDescriptor) string {
	name := string(ed.Name())
	var sb strings.Builder
	for i, r := range name {
		if i > 0 && r >= 'A' && r <= 'Z' {
			sb.WriteByte('_')
		}
		sb.WriteRune(r)
	}
	return strings.ToUpper(sb.String()) + "_"
}

func appendTimestamp(b []byte, m protoreflect.Message) []byte {
	fields := m.Descriptor().Fields()
	secs := m.Get(fields.ByName("seconds")).Int()
	nanos := m.Get(fields.ByName("nanos")).Int()
	return AppendTime(b, time.Unix(secs, nanos))
}

func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped exactly as Marshal escapes it.
func AppendString(b []byte, s string) []byte { return appendString(b, s) }

// AppendTime appends t as Marshal writes a google.protobuf.Timestamp.
func AppendTime(b []byte, t time.Time) []byte {
	return append(appendTimeText(append(b, '"'), t), '"')
}

// appendTimeText appends t in RFC 3339 in UTC, to the nanosecond as needed: the
// text of a timestamp in the JSON and the CSV.
func appendTimeText(b []byte, t time.Time) []byte { return t.UTC().AppendFormat(b, time.RFC3339Nano) }

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD; <, > and &
// are escaped so the output is safe to embed in HTML.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
