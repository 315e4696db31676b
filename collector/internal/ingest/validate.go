package ingest

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/wirelimits"
)

// What a sensor may send. Everything is checked before a batch is logged or applied
// (and again when the log is replayed), so one bad sensor cannot make the store
// allocate without bound, nor poison the log a restart replays.
const (
	// MaxIDBytes bounds sensor_id and boot_id, made of wirelimits.IDAlphabet.
	MaxIDBytes = wirelimits.MaxIDBytes
	// MaxTextBytes bounds hostname, interface and version (printable UTF-8).
	MaxTextBytes = wirelimits.MaxTextBytes
	// MaxCounterNameBytes bounds the name of a named counter (wirelimits.IDAlphabet), and
	// MaxNamedCounters their number in each list of a batch's stats.
	MaxCounterNameBytes = 64
	MaxNamedCounters    = 64
	// MaxDeltaPackets: packets of one direction of one delta are below it (2^40,
	// some three hours of 100 Mpps in one flow between two exports).
	MaxDeltaPackets = 1 << 40
	// MinPacketBytes and MaxPacketBytes bound the IP bytes a delta may count per
	// packet. The sensor counts the length in the IP header: IPv4 Total Length, at
	// least its 20-byte header (a shorter one is malformed and not counted), IPv6
	// Payload Length + 40; an IPv4 Total Length of 0 (a TSO / BIG TCP super-frame)
	// counts the captured length, which is at most 1 MiB (the largest record the
	// sensor reads from a capture file; the kernel's GSO limit is 512 KiB). Non-IP
	// frames are not flows.
	MinPacketBytes = 20
	MaxPacketBytes = 1 << 20
	// MaxClockAhead is how far ahead of the collector's clock a timestamp may be.
	MaxClockAhead = 24 * time.Hour
	// MaxStepBack is how far a delta's last_seen may be before its first_seen. The
	// sensor's last_seen is the flow's last packet in arrival order, and capture
	// timestamps can go backwards (pcapplusplus-many_interfaces-1, merged from
	// several interfaces, steps back 39 us inside a flow): that is real input; a
	// flow whose end is an hour before its start is not.
	MaxStepBack = time.Hour
	// DefaultSpoolBatches is the spool capacity assumed for a sensor whose hello
	// does not say it (SensorHello.spool_batches 0): a default sensor's 64 MiB spool
	// over the 64 bytes each spooled batch counts at least.
	DefaultSpoolBatches = 1 << 20
	// MaxDNSObservations bounds FlowBatch.dns; a batch with more is refused.
	MaxDNSObservations = 8192
	// MaxServerNameBytes bounds FlowDelta.server_name (of serverNameChars) and a DNS
	// observation's name and canonical name (DNS name characters); MaxAppBytes
	// FlowDelta.application (of appChars).
	MaxServerNameBytes = 253
	MaxAppBytes        = 32
)

// communityIDLen is the length of a Community ID v1: "1:" and the base64 of a
// 20-byte SHA-1.
var communityIDLen = 2 + base64.StdEncoding.EncodedLen(20)

// validCommunityID: "1:" and 28 characters of standard base64 that decode to 20
// bytes.
func validCommunityID(s string) bool {
	if len(s) != communityIDLen || s[:2] != "1:" {
		return false
	}
	var buf [21]byte
	n, err := base64.StdEncoding.Decode(buf[:], []byte(s[2:]))
	return err == nil && n == 20
}

// lowerChars reports whether s is made of lower-case letters, digits and the bytes
// of extra.
func lowerChars(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && strings.IndexByte(extra, c) < 0 {
			return false
		}
	}
	return true
}

// validDNSName: 1 to 253 bytes of lower-case letters, digits, '-' and '_', in
// labels of 1 to 63 bytes separated by dots (no final dot).
func validDNSName(s string) bool {
	if len(s) == 0 || len(s) > MaxServerNameBytes || !lowerChars(s, "-_.") {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '.' {
			if label++; label > 63 {
				return false
			}
			continue
		}
		if label == 0 {
			return false
		}
		label = 0
	}
	return label > 0
}

// ValidDNS returns the observations of obs fit to keep (received at now) and how
// many are not: a name and canonical name (empty, or the same rules) of DNS name
// characters in lower case (validDNSName), an address of 4 or 16 bytes, a seen time
// within a batch's bounds (checkTime). obs is not modified; the result shares its
// elements.
func ValidDNS(obs []*netwatchv1.DnsObservation, now time.Time) (valid []*netwatchv1.DnsObservation, invalid int) {
	for i, o := range obs {
		ok := validDNSName(o.GetName()) && (o.GetCanonical() == "" || validDNSName(o.GetCanonical())) &&
			(len(o.GetAddr()) == 4 || len(o.GetAddr()) == 16) && o.Seen != nil && checkTime("seen", -1, o.GetSeen(), now) == nil
		if ok {
			if valid == nil && invalid == 0 {
				continue // all valid so far: obs[:i+1] will do
			}
			valid = append(valid, o)
			continue
		}
		if invalid == 0 {
			valid = append(make([]*netwatchv1.DnsObservation, 0, len(obs)-1), obs[:i]...)
		}
		invalid++
	}
	if invalid == 0 {
		return obs, 0
	}
	return valid, invalid
}

// minTime is the earliest timestamp accepted: old captures replayed with --read are
// normal input, a date before 1990 is a broken clock or a broken message.
var minTime = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)

// ValidationError says what is wrong with a hello or a batch: the field, as a path
// into the message ("deltas[3].src_bytes"), and for a delta its index (-1 otherwise).
type ValidationError struct {
	Field  string
	Index  int
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

func bad(field string, index int, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Index: index, Reason: fmt.Sprintf(format, args...)}
}

// ValidateHello checks a stream's hello; now is the collector's clock.
func ValidateHello(h *netwatchv1.SensorHello, now time.Time) error {
	if err := checkID("sensor_id", h.GetSensorId()); err != nil {
		return err
	}
	if err := checkID("boot_id", h.GetBootId()); err != nil {
		return err
	}
	for _, f := range [...]struct{ name, v string }{{"hostname", h.GetHostname()}, {"interface", h.GetInterface()}, {"version", h.GetVersion()}} {
		if err := checkText(f.name, -1, f.v); err != nil {
			return err
		}
	}
	if h.StartedAt != nil {
		if err := checkTime("started_at", -1, h.GetStartedAt(), now); err != nil {
			return err
		}
	}
	return nil
}

// ValidateBatch checks a whole batch (not its sequence number, which depends on the
// boot's state); now is the collector's clock when the batch was received. The error
// is a *ValidationError naming the first bad field.
func ValidateBatch(b *netwatchv1.FlowBatch, now time.Time) error {
	if b.CreatedAt != nil {
		if err := checkTime("created_at", -1, b.GetCreatedAt(), now); err != nil {
			return err
		}
	}
	if st := b.GetStats(); st != nil {
		if err := checkText("stats.interface", -1, st.GetInterface()); err != nil {
			return err
		}
		for _, l := range [...]struct {
			name string
			cs   []*netwatchv1.CounterValue
		}{{"stats.decode_errors", st.GetDecodeErrors()}, {"stats.non_ip", st.GetNonIp()}} {
			if len(l.cs) > MaxNamedCounters {
				return bad(l.name, -1, "%d named counters, more than %d", len(l.cs), MaxNamedCounters)
			}
			for i, c := range l.cs {
				if n := c.GetName(); n == "" || len(n) > MaxCounterNameBytes || !wirelimits.IDChars(n) {
					return bad(fmt.Sprintf("%s[%d].name", l.name, i), -1, "must be 1 to %d bytes of %s", MaxCounterNameBytes, wirelimits.IDAlphabet)
				}
			}
		}
	}
	if l := b.GetLoss(); l != nil {
		for _, f := range [...]struct {
			name string
			ts   *timestamppb.Timestamp
		}{{"loss.first_lost", l.FirstLost}, {"loss.last_lost", l.LastLost}} {
			if f.ts != nil {
				if err := checkTime(f.name, -1, f.ts, now); err != nil {
					return err
				}
			}
		}
	}
	for i, d := range b.GetDeltas() {
		if err := checkDelta(i, d, now); err != nil {
			return err
		}
	}
	// Each observation is checked when the batch is applied (ValidDNS): a bad one
	// is dropped and counted, not a reason to refuse the batch; too many are.
	if n := len(b.GetDns()); n > MaxDNSObservations {
		return bad("dns", -1, "%d observations, more than %d", n, MaxDNSObservations)
	}
	return nil
}

func checkDelta(i int, d *netwatchv1.FlowDelta, now time.Time) error {
	field := func(name string) string { return fmt.Sprintf("deltas[%d].%s", i, name) }
	k := d.GetKey()
	switch {
	case k == nil:
		return bad(field("key"), i, "missing")
	case len(k.GetSrcAddr()) != 4 && len(k.GetSrcAddr()) != 16:
		return bad(field("key.src_addr"), i, "%d bytes: an address is 4 (IPv4) or 16 (IPv6)", len(k.GetSrcAddr()))
	case len(k.GetDstAddr()) != len(k.GetSrcAddr()):
		return bad(field("key.dst_addr"), i, "%d bytes: not of src_addr's family (%d bytes)", len(k.GetDstAddr()), len(k.GetSrcAddr()))
	case k.GetProtocol() > 255:
		return bad(field("key.protocol"), i, "%d is above 255", k.GetProtocol())
	case k.GetSrcPort() > 65535:
		return bad(field("key.src_port"), i, "%d is above 65535", k.GetSrcPort())
	case k.GetDstPort() > 65535:
		return bad(field("key.dst_port"), i, "%d is above 65535", k.GetDstPort())
	case d.GetVlanId() > 4095:
		return bad(field("vlan_id"), i, "%d is above 4095", d.GetVlanId())
	case d.GetSrcTcpFlags() > 255:
		return bad(field("src_tcp_flags"), i, "%d is above 255", d.GetSrcTcpFlags())
	case d.GetDstTcpFlags() > 255:
		return bad(field("dst_tcp_flags"), i, "%d is above 255", d.GetDstTcpFlags())
	case d.GetCommunityId() != "" && !validCommunityID(d.GetCommunityId()):
		return bad(field("community_id"), i, "%q is not a Community ID v1 (\"1:\" and the base64 of 20 bytes)", clip(d.GetCommunityId()))
	case len(d.GetServerName()) > MaxServerNameBytes || !lowerChars(d.GetServerName(), ".-_:"):
		return bad(field("server_name"), i, "must be at most %d bytes of [a-z0-9._:-], got %d bytes %q", MaxServerNameBytes, len(d.GetServerName()), clip(d.GetServerName()))
	case len(d.GetApplication()) > MaxAppBytes || !lowerChars(d.GetApplication(), "._-"):
		return bad(field("application"), i, "must be at most %d bytes of [a-z0-9._-], got %d bytes %q", MaxAppBytes, len(d.GetApplication()), clip(d.GetApplication()))
	}
	for _, dir := range [...]struct {
		name           string
		packets, bytes uint64
	}{{"src", d.GetSrcPackets(), d.GetSrcBytes()}, {"dst", d.GetDstPackets(), d.GetDstBytes()}} {
		if dir.packets >= MaxDeltaPackets {
			return bad(field(dir.name+"_packets"), i, "%d is not below 2^40", dir.packets)
		}
		// packets < 2^40, so packets x 2^20 does not overflow.
		if lo, hi := dir.packets*MinPacketBytes, dir.packets*MaxPacketBytes; dir.bytes < lo || dir.bytes > hi {
			return bad(field(dir.name+"_bytes"), i, "%d is outside [%d, %d] for %d packets (%d to %d IP bytes a packet)",
				dir.bytes, lo, hi, dir.packets, MinPacketBytes, MaxPacketBytes)
		}
	}
	if d.FirstSeen == nil {
		return bad(field("first_seen"), i, "missing")
	}
	if err := checkTime(field("first_seen"), i, d.GetFirstSeen(), now); err != nil {
		return err
	}
	if d.LastSeen != nil {
		if err := checkTime(field("last_seen"), i, d.GetLastSeen(), now); err != nil {
			return err
		}
		if first := d.GetFirstSeen().AsTime(); d.GetLastSeen().AsTime().Before(first.Add(-MaxStepBack)) {
			return bad(field("last_seen"), i, "%s is more than %v before first_seen %s",
				d.GetLastSeen().AsTime().Format(time.RFC3339Nano), MaxStepBack, first.Format(time.RFC3339Nano))
		}
	}
	return nil
}

// checkTime accepts a valid timestamp from 1990 to MaxClockAhead past now. It is
// checked on the raw seconds first: year 1 or 9999 must not reach time.Time
// arithmetic that would wrap them into another date.
func checkTime(field string, index int, ts *timestamppb.Timestamp, now time.Time) error {
	if err := ts.CheckValid(); err != nil {
		return bad(field, index, "not a valid timestamp (seconds %d, nanos %d)", ts.GetSeconds(), ts.GetNanos())
	}
	t := ts.AsTime()
	if ts.GetSeconds() < minTime.Unix() {
		return bad(field, index, "%s is before 1990", t.Format(time.RFC3339))
	}
	if limit := now.Add(MaxClockAhead); t.After(limit) {
		return bad(field, index, "%s is more than %v ahead of the collector's clock (%s)",
			t.Format(time.RFC3339), MaxClockAhead, now.UTC().Format(time.RFC3339))
	}
	return nil
}

func checkID(field, v string) error {
	if !wirelimits.ValidID(v) {
		return bad(field, -1, "must be 1 to %d bytes of %s, got %d bytes %q", MaxIDBytes, wirelimits.IDAlphabet, len(v), clip(v))
	}
	return nil
}

func checkText(field string, index int, v string) error {
	if len(v) > MaxTextBytes {
		return bad(field, index, "%d bytes, more than %d", len(v), MaxTextBytes)
	}
	if !utf8.ValidString(v) {
		return bad(field, index, "not UTF-8: %q", clip(v))
	}
	for _, r := range v {
		if !wirelimits.TextRune(r) {
			return bad(field, index, "holds the unprintable character %U: %q", r, clip(v))
		}
	}
	return nil
}

// clip shortens a bad value for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
