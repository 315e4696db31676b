package inspect

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"netwatch.dev/common/oracle"
	"netwatch.dev/proto/flowmeta"
	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/pcapfile"
)

// frame is one captured frame of a shared capture.
type frame struct {
	link decode.LinkType
	data []byte
	ts   int64
}

// readPcap returns the frames of a shared capture (copied).
func readPcap(t testing.TB, name string) []frame {
	f, err := os.Open(filepath.Join(oracle.Dir(), name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapfile.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []frame
	var rec pcapfile.Record
	for {
		if err := r.Next(&rec); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		out = append(out, frame{rec.LinkType, append([]byte(nil), rec.Data...), rec.Timestamp})
	}
}

// finding is one Inspect result, the name copied.
type finding struct {
	i    int
	app  flowmeta.App
	name string
}

// inspectAll decodes and inspects the frames the way the capture shard does.
func inspectAll(in *Inspector, frames []frame) []finding {
	var d decode.Decoder
	var p decode.Packet
	var out []finding
	for i, f := range frames {
		if !d.Decode(f.link, f.data, &p).IsIP() || p.PayloadLen == 0 {
			continue
		}
		if app, name := in.Inspect(&p, f.data, f.ts); app != flowmeta.AppNone {
			out = append(out, finding{i, app, string(name)})
		}
	}
	return out
}

func counter(in *Inspector, name string) uint64 {
	for _, c := range in.Counters(nil) {
		if c.Name == name {
			return c.Value
		}
	}
	panic("no counter " + name)
}
