package api

import (
	"crypto/subtle"
	"sync/atomic"
)

// Token is the API's bearer token, shared by the REST API, the gRPC query service
// and the live push; Set replaces it while they serve (SIGHUP). The zero Token is
// empty: no token required.
type Token struct{ v atomic.Pointer[string] }

// NewToken holds tok.
func NewToken(tok string) *Token {
	t := &Token{}
	t.Set(tok)
	return t
}

// Get is the current token ("" when none is required).
func (t *Token) Get() string {
	if p := t.v.Load(); p != nil {
		return *p
	}
	return ""
}

// Set replaces the token.
func (t *Token) Set(tok string) { t.v.Store(&tok) }

// Accepts reports whether header is exactly "Bearer TOKEN" with the current token;
// the comparison takes the same time whatever matches. With no token set it
// accepts anything.
func (t *Token) Accepts(header string) bool {
	want := t.Get()
	if want == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(header), []byte("Bearer "+want)) == 1
}
