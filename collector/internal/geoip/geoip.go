// Package geoip reads MaxMind-format databases (the MaxMind DB format of
// GeoLite2 and GeoIP2, and of the compatible databases others publish): the
// autonomous system of an address (GeoLite2-ASN layout: autonomous_system_number,
// autonomous_system_organization) and its country (GeoLite2-Country or -City
// layout: country.iso_code, else registered_country.iso_code).
//
// A DB follows its file: Run polls it (size, modification time, inode) and
// Reload, called on SIGHUP, checks at once; a changed file is read whole and
// verified before it replaces the database in use, and a file that cannot be
// read or is not a valid database of its kind leaves the one in use in place
// (logged and counted). The file is read into memory rather than mapped: a
// database rewritten or truncated in place (cp over it) would otherwise change
// under the reader or fault it (SIGBUS).
//
// A lookup walks the search tree (no allocation) and decodes the record once:
// records are cached by their offset in the data section, which the addresses
// of a network share, so repeated lookups cost the walk and a map read.
package geoip

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Kind is what a database says of an address.
type Kind uint8

// Kinds.
const (
	// ASN databases give the autonomous system (GeoLite2-ASN layout).
	ASN Kind = iota + 1
	// Country databases give the country (GeoLite2-Country or -City layout).
	Country
)

func (k Kind) String() string {
	switch k {
	case ASN:
		return "asn"
	case Country:
		return "country"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// maxCache bounds the decoded records kept per database (about 80 bytes each
// with their strings); beyond it the cache starts over. A GeoLite2-ASN has some
// 50,000 distinct records, a Country database a few hundred.
const maxCache = 1 << 16

// maxASName bounds an AS organization name kept (longer ones are cut at a rune).
const maxASName = 256

// DefaultPollInterval is how often Run looks at the file.
const DefaultPollInterval = 5 * time.Second

// DB is one database file in use. Its methods are safe for concurrent use; a nil
// *DB knows nothing.
type DB struct {
	kind Kind
	path string
	log  *slog.Logger
	cur  atomic.Pointer[db]

	mu     sync.Mutex // serialises Reload and poll
	loaded fileID     // the file of cur
	seen   fileID     // what the last poll saw (a change is loaded once it settles)
	failed fileID     // a file that failed to load: polls do not retry it
	statOK bool       // the last stat succeeded (a failing one is logged once)

	reloads, errs atomic.Uint64
}

type db struct {
	r     *maxminddb.Reader
	typ   string
	built time.Time

	mu    sync.RWMutex
	cache map[uintptr]record
}

type record struct {
	asn     uint32
	asName  string
	country string
}

type fileID struct {
	size, mtime int64
	ino, dev    uint64
}

func statFile(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino, id.dev = uint64(st.Ino), uint64(st.Dev)
	}
	return id, nil
}

// Open loads the database of kind at path. Errors say what is wrong with the
// file (the caller names the flag).
func Open(kind Kind, path string, log *slog.Logger) (*DB, error) {
	if kind != ASN && kind != Country {
		return nil, fmt.Errorf("unknown database kind %d", kind)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DB{kind: kind, path: path, log: log}
	id, err := statFile(path)
	if err != nil {
		return nil, err
	}
	cur, err := load(kind, path)
	if err != nil {
		return nil, err
	}
	d.cur.Store(cur)
	d.loaded, d.seen, d.statOK = id, id, true
	return d, nil
}

// load reads and verifies the file.
func load(kind Kind, path string) (*db, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: not a MaxMind DB file: %w", path, err)
	}
	if err := r.Verify(); err != nil {
		return nil, fmt.Errorf("%s: damaged MaxMind DB file: %w", path, err)
	}
	typ := r.Metadata.DatabaseType
	lt := strings.ToLower(typ)
	switch {
	case kind == ASN && (strings.Contains(lt, "country") || strings.Contains(lt, "city")):
		return nil, fmt.Errorf("%s is a %q database, not an ASN one", path, typ)
	case kind == Country && strings.Contains(lt, "asn"):
		return nil, fmt.Errorf("%s is a %q database, not a country or city one", path, typ)
	}
	return &db{r: r, typ: typ, built: r.Metadata.BuildTime(), cache: map[uintptr]record{}}, nil
}

// Path is the database's file.
func (d *DB) Path() string {
	if d == nil {
		return ""
	}
	return d.path
}

// Type is the database type the file's metadata gives (e.g. GeoLite2-ASN).
func (d *DB) Type() string {
	if d == nil {
		return ""
	}
	return d.cur.Load().typ
}

// Reloads counts the times a changed file replaced the database in use.
func (d *DB) Reloads() uint64 {
	if d == nil {
		return 0
	}
	return d.reloads.Load()
}

// Errors counts the changed files that could not be loaded (and stat failures):
// the database in use stayed.
func (d *DB) Errors() uint64 {
	if d == nil {
		return 0
	}
	return d.errs.Load()
}

// ASN is the autonomous system of a and its organization's name (0, "" if the
// database has none for it).
func (d *DB) ASN(a netip.Addr) (uint32, string) {
	r := d.lookup(a)
	return r.asn, r.asName
}

// Country is the ISO 3166-1 alpha-2 code (upper case) of a's country, else of
// the country it is registered in, else "".
func (d *DB) Country(a netip.Addr) string { return d.lookup(a).country }

func (d *DB) lookup(a netip.Addr) record {
	if d == nil || !a.IsValid() {
		return record{}
	}
	cur := d.cur.Load()
	res := cur.r.Lookup(a.Unmap().WithZone(""))
	if res.Err() != nil || !res.Found() {
		return record{}
	}
	off := res.Offset()
	cur.mu.RLock()
	rec, ok := cur.cache[off]
	cur.mu.RUnlock()
	if ok {
		return rec
	}
	rec = d.decode(res)
	cur.mu.Lock()
	if len(cur.cache) >= maxCache {
		clear(cur.cache)
	}
	cur.cache[off] = rec
	cur.mu.Unlock()
	return rec
}

type asnRecord struct {
	Number uint32 `maxminddb:"autonomous_system_number"`
	Org    string `maxminddb:"autonomous_system_organization"`
}

type countryRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Registered struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

// decode reads the record; fields of an unexpected type or value are unknown.
func (d *DB) decode(res maxminddb.Result) record {
	switch d.kind {
	case ASN:
		var v asnRecord
		if res.Decode(&v) != nil {
			// Decode by field, so a bad organization keeps the number.
			_ = res.DecodePath(&v.Number, "autonomous_system_number")
			v.Org = ""
			_ = res.DecodePath(&v.Org, "autonomous_system_organization")
		}
		return record{asn: v.Number, asName: cleanName(v.Org)}
	default:
		var v countryRecord
		_ = res.DecodePath(&v.Country.ISOCode, "country", "iso_code")
		_ = res.DecodePath(&v.Registered.ISOCode, "registered_country", "iso_code")
		if c := isoCode(v.Country.ISOCode); c != "" {
			return record{country: c}
		}
		return record{country: isoCode(v.Registered.ISOCode)}
	}
}

// isoCode is s upper-cased if it is two ASCII letters, else "".
func isoCode(s string) string {
	if len(s) != 2 {
		return ""
	}
	var b [2]byte
	for i := range 2 {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case 'A' <= c && c <= 'Z':
		default:
			return ""
		}
		b[i] = c
	}
	if string(b[:]) == s {
		return s
	}
	return string(b[:])
}

// cleanName drops control characters and bounds the length.
func cleanName(s string) string {
	clean := true
	for _, r := range s {
		if r < ' ' || r == 0x7f || r == '\uFFFD' {
			clean = false
			break
		}
	}
	if !clean {
		s = strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f || r == '\uFFFD' {
				return -1
			}
			return r
		}, s)
	}
	if len(s) > maxASName {
		cut := maxASName
		for cut > 0 && s[cut]&0xC0 == 0x80 { // not inside a rune
			cut--
		}
		s = s[:cut]
	}
	return strings.TrimSpace(s)
}

// Reload loads the file if it changed since it was loaded (SIGHUP: also a file
// that failed before). changed reports a new database in use; an error leaves
// the one in use.
func (d *DB) Reload() (changed bool, err error) {
	if d == nil {
		return false, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	id, err := statFile(d.path)
	if err != nil {
		d.errs.Add(1)
		d.statOK = false
		return false, fmt.Errorf("%s database %w (the database loaded before stays in use)", d.kind, err)
	}
	d.statOK = true
	if id == d.loaded {
		return false, nil
	}
	return d.loadLocked(id)
}

func (d *DB) loadLocked(id fileID) (bool, error) {
	d.seen = id
	cur, err := load(d.kind, d.path)
	if err != nil {
		d.failed = id
		d.errs.Add(1)
		d.log.Error("geoip database not reloaded; the one loaded before stays in use", "db", d.kind.String(), "file", d.path, "err", err)
		return false, fmt.Errorf("%s database: %w (the database loaded before stays in use)", d.kind, err)
	}
	d.cur.Store(cur)
	d.loaded, d.failed = id, fileID{}
	d.reloads.Add(1)
	d.log.Info("geoip database reloaded", "db", d.kind.String(), "file", d.path, "type", cur.typ, "built", cur.built.UTC().Format(time.RFC3339))
	return true, nil
}

// poll loads the file once a change has settled (the same size, time and inode
// on two polls in a row, so a file being written is not read half-way); a file
// that failed to load is not retried until it changes again.
func (d *DB) poll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, err := statFile(d.path)
	if err != nil {
		if d.statOK {
			d.statOK = false
			d.errs.Add(1)
			d.log.Error("geoip database file unreadable; the one loaded before stays in use", "db", d.kind.String(), "file", d.path, "err", err)
		}
		d.seen = fileID{}
		return
	}
	d.statOK = true
	switch {
	case id == d.loaded || id == d.failed:
		d.seen = id
	case id != d.seen:
		d.seen = id // changed: load when it stays so
	default:
		d.loadLocked(id) //nolint:errcheck // logged and counted
	}
}

// Run polls the file every interval until ctx is done.
func (d *DB) Run(ctx context.Context, interval time.Duration) {
	if d == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.poll()
		}
	}
}
