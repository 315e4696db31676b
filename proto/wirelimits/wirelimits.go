// Package wirelimits holds the limits both ends of the sensor link must agree on:
// the collector refuses a hello or batch beyond them (collector/internal/ingest),
// and the sensor checks or trims what it sends to fit them.
package wirelimits

import "unicode"

const (
	// MaxIDBytes bounds a sensor id and a boot id, made of IDAlphabet.
	MaxIDBytes = 128
	// MaxTextBytes bounds a hostname, an interface and a version: UTF-8 made of
	// TextRunes.
	MaxTextBytes = 256
	// IDAlphabet is what sensor ids, boot ids and counter names are made of.
	IDAlphabet = "[A-Za-z0-9._:-]"
)

// IDChars reports whether every byte of s is in IDAlphabet.
func IDChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// ValidID reports whether id is a sensor or boot id the collector accepts: 1 to
// MaxIDBytes bytes of IDAlphabet.
func ValidID(id string) bool { return id != "" && len(id) <= MaxIDBytes && IDChars(id) }

// TextRune reports whether r may stand in a text field (a hostname, an interface,
// a version): printable characters only.
func TextRune(r rune) bool { return unicode.IsPrint(r) }
