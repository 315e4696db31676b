package inspect

import (
	"bytes"
	"encoding/binary"
	"testing"

	"netwatch.dev/proto/flowmeta"
	"netwatch.dev/sensor/internal/decode"
)

// seedPayloads are the TCP/UDP payloads of the shared captures that the
// inspector recognises, with their ports: the seeds of the fuzz targets.
func seedPayloads(f *testing.F, keep func(p *decode.Packet, b []byte) bool) {
	for _, name := range []string{"pcapplusplus-tls2.pcap", "pcapplusplus-DnsPackets.pcap", "pcapplusplus-example2.pcap", "ndpi-alexa-app.pcapng"} {
		var d decode.Decoder
		var p decode.Packet
		n := 0
		for _, fr := range readPcap(f, name) {
			if !d.Decode(fr.link, fr.data, &p).IsIP() || p.PayloadLen == 0 {
				continue
			}
			if b := p.Payload(fr.data); keep(&p, b) && n < 40 {
				f.Add(b)
				n++
			}
		}
	}
}

// fuzzInspector is reused by the fuzz targets' runs (a zero Inspector
// allocates its buffers on first use, which would dominate a run).
var fuzzInspector = new(Inspector)

func freshInspector() *Inspector {
	in := fuzzInspector
	buf, st := in.pend.buf, in.dns
	*in = Inspector{}
	in.pend.buf = buf
	if st.index != nil {
		clear(st.index)
		in.dns = dnsStore{arena: st.arena[:0], ents: st.ents[:0], index: st.index}
	}
	return in
}

// checkName: what Inspect returns as a server name is valid.
func checkName(t *testing.T, name []byte) {
	if len(name) > maxName {
		t.Fatalf("name of %d bytes", len(name))
	}
	for _, c := range name {
		if nameByte[c] != c {
			t.Fatalf("name %q has byte %q", name, c)
		}
	}
}

// FuzzClientHello feeds arbitrary bytes as TLS records of one TCP flow, in
// one segment and split in two: no input may panic or leave a bad name, the
// pool must stay bounded, and a split never finds a different name than the
// whole (when the whole fits in MaxHello).
func FuzzClientHello(f *testing.F) {
	f.Add(clientHello("seed.example", 10))
	seedPayloads(f, func(p *decode.Packet, b []byte) bool { return p.Protocol == 6 && len(b) > 5 && b[0] == 22 && b[5] == 1 })
	f.Fuzz(func(t *testing.T, b []byte) {
		in := freshInspector()
		app, name := inspect1(t, in, ethFrame(6, 1000, 443, b), 1)
		checkName(t, []byte(name))
		whole := string(name)
		if len(b) < 2 || len(b) > 1400 {
			return
		}
		in = freshInspector()
		k := int(b[len(b)-1]) % len(b)
		a2, n2 := inspect1(t, in, ethFrame(6, 1000, 443, b[:k]), 1)
		if a2 == flowmeta.AppNone {
			_, n2 = inspect1(t, in, ethFrame(6, 1000, 443, b[k:]), 2)
		}
		checkName(t, []byte(n2))
		if in.pend.n < 0 || in.pend.n > len(in.pend.ent) {
			t.Fatalf("pool holds %d", in.pend.n)
		}
		if app == flowmeta.AppTLS && whole != "" && n2 != whole && n2 != "" {
			t.Fatalf("whole: %q, split at %d: %q", whole, k, n2)
		}
	})
}

// FuzzDNSResponse feeds arbitrary bytes as DNS responses over UDP and TCP: no
// input may panic (pointer loops, cut records), answers must have valid names
// and the store must stay within its bounds.
func FuzzDNSResponse(f *testing.F) {
	m := newDNSResponse(1, 2)
	q := m.question("a.example", 1)
	m.cname("@12", 1, "b.example")
	m.a("b.@"+string(rune('0'+q/10))+string(rune('0'+q%10)), 1, "192.0.2.1")
	f.Add(m.b)
	seedPayloads(f, func(p *decode.Packet, b []byte) bool { return p.Protocol == 17 && p.SrcPort == 53 })
	f.Fuzz(func(t *testing.T, b []byte) {
		in := freshInspector()
		inspect1(t, in, ethFrame(17, 53, 1000, b), 1)
		if len(b) < 0xffff-100 {
			tcp := binary.BigEndian.AppendUint16(nil, uint16(len(b)))
			inspect1(t, in, ethFrame(6, 53, 1000, append(tcp, b...)), 2)
		}
		n := 0
		in.DrainDNS(func(a *DNSAnswer) {
			n++
			checkName(t, []byte(a.Name))
			checkName(t, []byte(a.Canonical))
			if a.Name == "" || !a.Addr.IsValid() || bytes.Contains([]byte(a.Name), []byte("..")) {
				t.Fatalf("answer %+v", *a)
			}
		})
		if n > 2*dnsMaxRRs {
			t.Fatalf("%d answers from two copies of one message", n)
		}
	})
}

// FuzzInspect feeds arbitrary payloads on TCP and UDP with ports from the
// input, several packets of one flow in turn: no panic, valid names.
func FuzzInspect(f *testing.F) {
	f.Add(uint16(40000), uint16(80), true, []byte("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"))
	f.Add(uint16(443), uint16(50000), false, []byte{0xc3, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, sport, dport uint16, tcp bool, b []byte) {
		proto := uint8(17)
		if tcp {
			proto = 6
		}
		in := freshInspector()
		for i, part := range bytes.SplitAfter(b, []byte{0x16}) {
			if len(part) == 0 || len(part) > 1400 {
				continue
			}
			_, name := inspect1(t, in, ethFrame(proto, sport, dport, part), int64(i)*1e9)
			checkName(t, []byte(name))
		}
		in.DrainDNS(func(a *DNSAnswer) { checkName(t, []byte(a.Name)) })
	})
}
