package flowmeta

// App is an application label: what a flow's first payload bytes showed, or
// the service of its well-known port. The labels (String) are what the API,
// CSV and JSON lines carry.
type App uint8

// Applications. AppNone means unknown. Values are part of no wire format
// (the label is), so the list may be reordered.
const (
	AppNone App = iota
	// Recognised from payload.
	AppTLS
	AppHTTP
	AppDNS
	AppSSH
	AppQUIC
	// From the well-known port only.
	AppNTP
	AppDHCP
	AppSNMP
	AppSMB
	AppRDP
	AppLDAP
	AppSMTP
	AppIMAP
	AppPOP3
	AppFTP
	AppTelnet
	AppSyslog
	AppMySQL
	AppPostgreSQL
	AppRedis
	AppMDNS
	AppNetBIOS
	AppBGP
	AppKerberos
	AppSIP
	AppIPsec
	AppOpenVPN
	AppWireGuard
	numApps
)

var appNames = [numApps]string{
	AppNone: "", AppTLS: "tls", AppHTTP: "http", AppDNS: "dns", AppSSH: "ssh", AppQUIC: "quic",
	AppNTP: "ntp", AppDHCP: "dhcp", AppSNMP: "snmp", AppSMB: "smb", AppRDP: "rdp", AppLDAP: "ldap",
	AppSMTP: "smtp", AppIMAP: "imap", AppPOP3: "pop3", AppFTP: "ftp", AppTelnet: "telnet",
	AppSyslog: "syslog", AppMySQL: "mysql", AppPostgreSQL: "postgresql", AppRedis: "redis",
	AppMDNS: "mdns", AppNetBIOS: "netbios", AppBGP: "bgp", AppKerberos: "kerberos", AppSIP: "sip",
	AppIPsec: "ipsec", AppOpenVPN: "openvpn", AppWireGuard: "wireguard",
}

// String is the label: "" for AppNone.
func (a App) String() string {
	if a >= numApps {
		return ""
	}
	return appNames[a]
}

// ParseApp returns the App with label s.
func ParseApp(s string) (App, bool) {
	for i, n := range appNames {
		if n == s && i != int(AppNone) {
			return App(i), true
		}
	}
	return AppNone, false
}
