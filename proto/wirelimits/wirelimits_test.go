package wirelimits

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidID(t *testing.T) {
	for _, id := range []string{"s1", "edge-01.dc:a_b", strings.Repeat("a", MaxIDBytes)} {
		assert.True(t, ValidID(id), id)
	}
	for _, id := range []string{"", "rack 4", "=1+2", "<img>", "é", strings.Repeat("a", MaxIDBytes+1)} {
		assert.False(t, ValidID(id), id)
	}
	assert.True(t, IDChars(""), "the alphabet alone says nothing of length")
}

func TestTextRune(t *testing.T) {
	for _, r := range "aZ9 .-é漢€\uFFFD" {
		assert.True(t, TextRune(r), "%U", r)
	}
	for _, r := range "\x00\n\t\x1b\u200b\u2028\u00ad" {
		assert.False(t, TextRune(r), "%U", r)
	}
}
