package flowmeta

// PortApp is the application a flow's well-known port suggests, the fallback when
// its payload showed none: the responder's port (dport) first, the initiator's
// when only that one is known (a flow first seen from its server side), and the
// port below 1024 when both are known and only one of them is. TCP, UDP and
// SCTP (with TCP's table) only, plus IPsec's ESP and AH, which have no ports.
func PortApp(proto uint8, sport, dport uint16) App {
	var byPort func(uint16) App
	switch proto {
	case protoTCP, protoSCTP:
		byPort = tcpPortApp
	case protoUDP:
		byPort = udpPortApp
	case 50, 51: // ESP, AH
		return AppIPsec
	default:
		return AppNone
	}
	d, s := byPort(dport), byPort(sport)
	switch {
	case d == AppNone:
		return s
	case s != AppNone && sport < 1024 && dport >= 1024:
		return s
	}
	return d
}

func tcpPortApp(p uint16) App {
	switch p {
	case 443, 8443:
		return AppTLS
	case 80, 8080:
		return AppHTTP
	case 53, 853:
		return AppDNS
	case 22:
		return AppSSH
	case 445:
		return AppSMB
	case 3389:
		return AppRDP
	case 389, 636:
		return AppLDAP
	case 25, 465, 587:
		return AppSMTP
	case 143, 993:
		return AppIMAP
	case 110, 995:
		return AppPOP3
	case 20, 21:
		return AppFTP
	case 23:
		return AppTelnet
	case 601, 6514:
		return AppSyslog
	case 3306:
		return AppMySQL
	case 5432:
		return AppPostgreSQL
	case 6379:
		return AppRedis
	case 139:
		return AppNetBIOS
	case 179:
		return AppBGP
	case 88:
		return AppKerberos
	case 5060, 5061:
		return AppSIP
	case 1194:
		return AppOpenVPN
	}
	return AppNone
}

func udpPortApp(p uint16) App {
	switch p {
	case 443:
		return AppQUIC
	case 53:
		return AppDNS
	case 123:
		return AppNTP
	case 67, 68, 546, 547:
		return AppDHCP
	case 161, 162:
		return AppSNMP
	case 3389:
		return AppRDP
	case 389:
		return AppLDAP
	case 514:
		return AppSyslog
	case 5353:
		return AppMDNS
	case 137, 138:
		return AppNetBIOS
	case 88:
		return AppKerberos
	case 5060:
		return AppSIP
	case 500, 4500:
		return AppIPsec
	case 1194:
		return AppOpenVPN
	case 51820:
		return AppWireGuard
	}
	return AppNone
}
