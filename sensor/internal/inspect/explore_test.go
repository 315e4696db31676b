package inspect

import "testing"

func TestExplore(t *testing.T) {
	for _, n := range []string{"pcapplusplus-tls2.pcap", "pcapplusplus-DnsPackets.pcap", "pcapplusplus-one_http_stream_fin.pcap", "ndpi-alexa-app.pcapng", "zeek-ipv6-fragmented-dns.pcap", "pcapplusplus-example2.pcap"} {
		var in Inspector
		fs := inspectAll(&in, readPcap(t, n))
		seen := map[string]int{}
		for _, f := range fs {
			seen[f.app.String()+" "+f.name]++
		}
		t.Logf("%s: %v", n, seen)
		n := 0
		in.DrainDNS(func(a *DNSAnswer) {
			if n++; n < 6 {
				t.Logf("  %+v", *a)
			}
		})
		t.Logf("  %d answers; %v", n, in.Counters(nil))
	}
}
