package inspect

import (
	"bytes"

	"netwatch.dev/proto/flowmeta"
)

// methods are the HTTP/1.x request methods recognised (RFC 9110 9.3, RFC
// 5789), with the space that follows the token.
var methods = [...]string{"GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "}

// http recognises an HTTP/1.x request at the start of b (a method token, a
// space, a request line ending in HTTP/1.x within MaxHello bytes) and
// returns its Host (RFC 9112 3.2) without the port.
func (in *Inspector) http(b []byte) (flowmeta.App, []byte) {
	ok := false
	for _, m := range methods {
		if len(b) > len(m) && b[0] == m[0] && string(b[:len(m)]) == m {
			ok = true
			break
		}
	}
	if !ok {
		return flowmeta.AppNone, nil
	}
	if len(b) > MaxHello {
		b = b[:MaxHello]
	}
	eol := bytes.IndexByte(b, '\n')
	if eol < 0 {
		return flowmeta.AppNone, nil
	}
	line := bytes.TrimSuffix(b[:eol], []byte{'\r'})
	if len(line) < 9 || string(line[len(line)-9:len(line)-1]) != " HTTP/1." {
		return flowmeta.AppNone, nil
	}
	in.counters[cHTTPRequests]++
	for rest := b[eol+1:]; len(rest) > 0; {
		eol = bytes.IndexByte(rest, '\n')
		if eol < 0 {
			break // headers go on past this packet (or MaxHello)
		}
		line, rest = bytes.TrimSuffix(rest[:eol], []byte{'\r'}), rest[eol+1:]
		if len(line) == 0 {
			break // end of the headers
		}
		if len(line) < 5 || line[4] != ':' || line[0]|0x20 != 'h' || line[1]|0x20 != 'o' ||
			line[2]|0x20 != 's' || line[3]|0x20 != 't' {
			continue
		}
		v := bytes.Trim(line[5:], " \t")
		if i := bytes.LastIndexByte(v, ':'); i >= 0 && v[0] != '[' && digits(v[i+1:]) {
			v = v[:i]
		}
		name, ok := in.setName(v)
		if !ok {
			in.counters[cHTTPBadHost]++
			return flowmeta.AppHTTP, nil
		}
		in.counters[cHTTPHost]++
		return flowmeta.AppHTTP, name
	}
	return flowmeta.AppHTTP, nil
}

func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
