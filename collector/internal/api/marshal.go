package api

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"netwatch.dev/proto/restjson"
)

// restMarshaler makes grpc-gateway speak the REST API's JSON (all fields, 64-bit numbers as numbers): see package restjson.
// Requests carry no bodies (every endpoint is a GET), so decoding is protojson's.
type restMarshaler struct{}

var _ runtime.Marshaler = restMarshaler{}

func (restMarshaler) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case proto.Message:
		return restjson.Marshal(m), nil
	default:
		return json.Marshal(v)
	}
}

func (restMarshaler) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("cannot decode into %T", v)
	}
	return protojson.Unmarshal(data, m)
}

func (r restMarshaler) NewDecoder(rd io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		data, err := io.ReadAll(io.LimitReader(rd, 1<<20))
		if err != nil {
			return err
		}
		return r.Unmarshal(data, v)
	})
}

func (r restMarshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := r.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
}

func (restMarshaler) ContentType(any) string { return "application/json" }
