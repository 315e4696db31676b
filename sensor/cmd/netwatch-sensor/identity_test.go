package main

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/proto/flowmeta"
)

// TestJSONLinesCarryFlowIdentity: --output jsonl lines carry communityId (hashed
// with --community-id-seed), serverName and application; the seed is an
// environment variable like every flag.
func TestJSONLinesCarryFlowIdentity(t *testing.T) {
	pcap := filepath.Join(pcapDir, "pcapplusplus-DnsPackets.pcap")
	ids := map[uint16]map[string]bool{}
	for _, seed := range []uint16{0, 1} {
		args := []string{"--read", pcap, "--output", "jsonl"}
		if seed == 1 {
			t.Setenv("NETWATCH_COMMUNITY_ID_SEED", "1")
		}
		code, out, errOut := runSensor(t, args...)
		require.Equal(t, exitOK, code, errOut)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Greater(t, len(lines), 100)
		ids[seed] = map[string]bool{}
		for _, l := range lines {
			var f struct {
				SrcIP, DstIP     string
				SrcPort, DstPort uint16
				Protocol         uint8
				CommunityID      string `json:"communityId"`
				ServerName       *string
				Application      string
			}
			require.NoError(t, json.Unmarshal([]byte(l), &f), l)
			require.NotNil(t, f.ServerName, "serverName present: %s", l)
			src, dst := netip.MustParseAddr(f.SrcIP), netip.MustParseAddr(f.DstIP)
			if f.Protocol == 6 || f.Protocol == 17 {
				require.Equal(t, flowmeta.CommunityID(seed, f.Protocol, src, dst, f.SrcPort, f.DstPort, 0, 0, false), f.CommunityID, l)
			}
			if f.Protocol == 17 && f.DstPort == 53 {
				assert.Equal(t, "dns", f.Application, l)
			}
			ids[seed][f.CommunityID] = true
		}
	}
	for id := range ids[0] {
		assert.False(t, ids[1][id], "seed 1 gives other IDs than seed 0: %s", id)
	}
}
