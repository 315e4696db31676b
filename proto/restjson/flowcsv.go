package restjson

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// The CSV download of flows (GET /api/v1/flows?format=csv): a header row of the
// NetworkFlow JSON names, then a row per flow with each value spelled as in the JSON
// (strings without quotes, timestamps as AppendTime writes them). Every cell gets the
// formula defusing of csvCell, then the quoting of encoding/csv (RFC 4180, "\n"
// line ends): the bytes a csv.Writer writes for those cells.

// AppendFlowCSVHeader appends the header row.
func AppendFlowCSVHeader(b []byte) []byte {
	fields := (&netwatchv1.NetworkFlow{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if i > 0 {
			b = append(b, ',')
		}
		start := len(b)
		b = csvCell(append(b, fields.Get(i).JSONName()...), start)
	}
	return append(b, '\n')
}

// AppendFlowCSV appends f's row, its columns in the order of the header.
func AppendFlowCSV(b []byte, f *Flow) []byte {
	b = f.appendID(b) // hex digits: never defused or quoted
	b = append(b, ',')
	b = csvAddr(b, f.Src)
	b = csvAddr(b, f.Dst)
	b = strconv.AppendUint(b, uint64(f.SrcPort), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(f.DstPort), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(f.Protocol), 10)
	b = append(b, ',')
	b = append(b, flowmeta.ProtocolName(f.Protocol)...) // letters or digits
	b = append(b, ',')
	b = strconv.AppendUint(b, f.SrcBytes+f.DstBytes, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, f.SrcPackets+f.DstPackets, 10)
	b = append(b, ',')
	b = csvTime(b, f.FirstSeen)
	b = csvTime(b, f.LastSeen)
	b = strconv.AppendInt(b, f.duration(), 10) // a number: never defused
	b = append(b, ',')
	b = csvString(b, statusName(f.Status))
	b = strconv.AppendUint(b, f.SrcPackets, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, f.SrcBytes, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, f.DstPackets, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, f.DstBytes, 10)
	b = append(b, ',')
	b = csvString(b, endReasonName(f.EndReason))
	b = csvString(b, f.SensorID)
	b = strconv.AppendUint(b, uint64(f.VLAN), 10)
	b = append(b, ',')
	b = flowmeta.AppendTCPFlags(b, f.SrcTCPFlags) // letters
	b = append(b, ',')
	b = flowmeta.AppendTCPFlags(b, f.DstTCPFlags)
	b = append(b, ',')
	// The columns added with flow identity and enrichment, at the end (tools read
	// by name): names and labels come from the wire or DNS, so each is defused.
	b = csvString(b, f.CommunityID)
	b = csvString(b, f.ServerName)
	b = csvString(b, f.Application)
	b = csvString(b, f.SrcName)
	b = csvString(b, f.DstName)
	b = strconv.AppendUint(b, uint64(f.SrcASN), 10)
	b = append(b, ',')
	b = csvString(b, f.SrcASName)
	b = csvString(b, f.SrcCountry)
	b = strconv.AppendUint(b, uint64(f.DstASN), 10)
	b = append(b, ',')
	b = csvString(b, f.DstASName)
	start := len(b)
	b = csvCell(append(b, f.DstCountry...), start)
	return append(b, '\n')
}

// csvString, csvAddr and csvTime append a cell and the comma after it.
func csvString(b []byte, s string) []byte {
	start := len(b)
	return append(csvCell(append(b, s...), start), ',')
}

func csvAddr(b []byte, a netip.Addr) []byte {
	start := len(b)
	if a.IsValid() {
		b = a.AppendTo(b)
	} else {
		b = append(b, a.String()...)
	}
	return append(csvCell(b, start), ',')
}

func csvTime(b []byte, ns int64) []byte {
	start := len(b)
	b = appendTimeText(b, time.Unix(0, ns))
	return append(csvCell(b, start), ',')
}

// csvCell makes b[start:], one cell's text, what a csv.Writer writes for it once
// defused. A cell a spreadsheet would run as a formula (the OWASP CSV injection
// rule), one that begins with = + - @, a tab or a carriage return and is not a
// number, gets a leading apostrophe, which spreadsheets show as text and do not
// display. Every column goes through it; numbers, timestamps, IP addresses (an IPv6
// address never begins with one of these) and the other ordinary values come out
// unchanged, so only hostile or odd text changes.
func csvCell(b []byte, start int) []byte {
	cell := b[start:]
	defuse := len(cell) > 0 && strings.IndexByte("=+-@\t\r", cell[0]) >= 0 && !isNumber(cell)
	// "'" + cell needs quotes only for a special byte in cell.
	quote := defuse && hasSpecial(cell) || !defuse && needsQuotes(cell)
	if !defuse && !quote {
		return b
	}
	text := string(cell) // rare: hostile or odd text only
	b = b[:start]
	if quote {
		b = append(b, '"')
	}
	if defuse {
		b = append(b, '\'')
	}
	for i := 0; i < len(text); i++ {
		if text[i] == '"' && quote {
			b = append(b, '"')
		}
		b = append(b, text[i])
	}
	if quote {
		b = append(b, '"')
	}
	return b
}

// needsQuotes is encoding/csv's rule for the comma ',': a field with a quote, a
// comma, a CR or an LF, the field `\.`, or one that begins with a space.
func needsQuotes[T string | []byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	if string(s) == `\.` {
		return true
	}
	if hasSpecial(s) {
		return true
	}
	var r rune
	if s[0] < utf8.RuneSelf {
		r = rune(s[0])
	} else {
		r, _ = utf8.DecodeRuneInString(string(s))
	}
	return unicode.IsSpace(r)
}

// hasSpecial reports whether s has a quote, a comma, a CR or an LF.
func hasSpecial[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\n' || c == '\r' || c == '"' || c == ',' {
			return true
		}
	}
	return false
}

// isNumber reports whether s is a plain decimal number: an optional sign,
// digits with at most one decimal point, and an optional exponent ("-5", "+1.5",
// "-2e10"). Unlike strconv.ParseFloat it refuses "Inf", "NaN", hex and
// underscores, which a spreadsheet does not read as numbers.
func isNumber[T string | []byte](s T) bool {
	mant, exp := s, s[:0]
	for i := 0; i < len(s); i++ {
		if s[i] == 'e' || s[i] == 'E' {
			mant, exp = s[:i], s[i+1:]
			if len(exp) > 0 && exp[0] == '+' {
				exp = exp[1:]
			}
			if len(exp) > 0 && exp[0] == '-' {
				exp = exp[1:]
			}
			if !digitsOnly(exp, false) {
				return false
			}
			break
		}
	}
	if len(mant) > 0 && (mant[0] == '+' || mant[0] == '-') {
		mant = mant[1:]
	}
	return digitsOnly(mant, true)
}

// digitsOnly reports whether s is one or more digits, with at most one decimal
// point among them when point.
func digitsOnly[T string | []byte](s T, point bool) bool {
	digits := 0
	for i := range len(s) {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && point:
			point = false
		default:
			return false
		}
	}
	return digits > 0
}
