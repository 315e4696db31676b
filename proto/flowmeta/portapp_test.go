package flowmeta

import "testing"

func TestPortApp(t *testing.T) {
	for _, c := range []struct {
		proto        uint8
		sport, dport uint16
		want         string
	}{
		{6, 51000, 443, "tls"},
		{17, 51000, 443, "quic"},
		{6, 443, 51000, "tls"}, // seen from the server side first
		{6, 51000, 80, "http"},
		{6, 51000, 8080, "http"},
		{6, 51000, 22, "ssh"},
		{17, 51000, 53, "dns"},
		{6, 51000, 53, "dns"},
		{17, 123, 123, "ntp"},
		{17, 68, 67, "dhcp"},
		{17, 51000, 161, "snmp"},
		{6, 51000, 445, "smb"},
		{6, 51000, 3389, "rdp"},
		{6, 51000, 389, "ldap"},
		{6, 51000, 587, "smtp"},
		{6, 51000, 993, "imap"},
		{6, 51000, 995, "pop3"},
		{6, 51000, 21, "ftp"},
		{6, 51000, 23, "telnet"},
		{17, 51000, 514, "syslog"},
		{6, 51000, 3306, "mysql"},
		{6, 51000, 5432, "postgresql"},
		{6, 51000, 6379, "redis"},
		{17, 5353, 5353, "mdns"},
		{17, 137, 137, "netbios"},
		{6, 51000, 179, "bgp"},
		{17, 51000, 88, "kerberos"},
		{17, 5060, 5060, "sip"},
		{17, 500, 500, "ipsec"},
		{17, 51000, 4500, "ipsec"},
		{50, 0, 0, "ipsec"},
		{51, 0, 0, "ipsec"},
		{17, 51000, 1194, "openvpn"},
		{17, 51000, 51820, "wireguard"},
		{132, 51000, 443, "tls"},
		// The responder's port first, unless only the initiator's is below 1024.
		{17, 5353, 53, "dns"},
		{17, 53, 5060, "dns"},
		{6, 3306, 6379, "redis"},
		{6, 22, 80, "http"},
		// Nothing known.
		{6, 51000, 51001, ""},
		{17, 443, 443, "quic"},
		{1, 8, 0, ""},
		{58, 0, 443, ""},
		{47, 0, 0, ""},
		{6, 0, 0, ""},
	} {
		if got := PortApp(c.proto, c.sport, c.dport).String(); got != c.want {
			t.Errorf("PortApp(%d, %d, %d) = %q, want %q", c.proto, c.sport, c.dport, got, c.want)
		}
	}
}
