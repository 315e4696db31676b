package geoip

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/collector/internal/geoip/geoiptest"
)

var ip = netip.MustParseAddr

func asnDB(t *testing.T, dir string, org string) string {
	t.Helper()
	return geoiptest.WriteFile(t, dir, "asn.mmdb", geoiptest.ASNBytes(t, map[string]geoiptest.AS{
		"192.0.2.0/24":    {Number: 64500, Org: org},
		"2001:db8::/32":   {Number: 64501, Org: "Six \x01Net"},
		"198.51.100.0/24": {Number: 64502},
	}))
}

func TestASNLookups(t *testing.T) {
	path := asnDB(t, t.TempDir(), "Example Net")
	d, err := Open(ASN, path, nil)
	require.NoError(t, err)
	assert.Equal(t, "GeoLite2-ASN", d.Type())
	for _, tc := range []struct {
		addr string
		asn  uint32
		name string
	}{
		{"192.0.2.77", 64500, "Example Net"},
		{"::ffff:192.0.2.77", 64500, "Example Net"}, // v4-mapped
		{"2001:db8:1::5", 64501, "Six Net"},         // control character dropped
		{"fe80::1%eth0", 0, ""},
		{"198.51.100.1", 64502, ""}, // no organization
		{"203.0.113.1", 0, ""},      // not in the database
	} {
		n, name := d.ASN(ip(tc.addr))
		assert.Equal(t, tc.asn, n, tc.addr)
		assert.Equal(t, tc.name, name, tc.addr)
	}
	n, name := d.ASN(netip.Addr{})
	assert.Zero(t, n)
	assert.Empty(t, name)
	var nilDB *DB
	n, _ = nilDB.ASN(ip("192.0.2.1"))
	assert.Zero(t, n)
	assert.Empty(t, nilDB.Country(ip("192.0.2.1")))
	changed, err := nilDB.Reload()
	assert.False(t, changed)
	assert.NoError(t, err)

	// A cached lookup allocates nothing.
	a := ip("192.0.2.9")
	d.ASN(a)
	assert.Zero(t, testing.AllocsPerRun(100, func() { d.ASN(a) }))
}

func TestCountryLookups(t *testing.T) {
	for _, typ := range []string{"GeoLite2-Country", "GeoIP2-City"} {
		t.Run(typ, func(t *testing.T) {
			path := geoiptest.WriteFile(t, t.TempDir(), "c.mmdb", geoiptest.CountryBytes(t, typ, map[string]geoiptest.Place{
				"192.0.2.0/24":     {Country: "US", Registered: "CA"},
				"198.51.100.0/24":  {Registered: "DE"}, // no country: the registered one
				"203.0.113.0/25":   {Country: "fr"},
				"203.0.113.128/25": {Country: "USA", Registered: "1x"},
				"2001:db8::/32":    {Country: "JP"},
			}))
			d, err := Open(Country, path, nil)
			require.NoError(t, err)
			for addr, want := range map[string]string{
				"192.0.2.1": "US", "198.51.100.1": "DE", "203.0.113.1": "FR", "203.0.113.200": "",
				"2001:db8::1": "JP", "::ffff:192.0.2.1": "US", "10.0.0.1": "",
			} {
				assert.Equal(t, want, d.Country(ip(addr)), addr)
			}
		})
	}
}

func TestOpenRefusesWhatIsNotADatabaseOfItsKind(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(ASN, filepath.Join(dir, "missing.mmdb"), nil)
	assert.ErrorIs(t, err, os.ErrNotExist)

	junk := geoiptest.WriteFile(t, dir, "junk.mmdb", []byte("not a database at all"))
	_, err = Open(ASN, junk, nil)
	assert.ErrorContains(t, err, "not a MaxMind DB file")

	asn := asnDB(t, dir, "Example Net")
	// Cut short: the metadata (at the end) is gone.
	b, err := os.ReadFile(asn)
	require.NoError(t, err)
	cut := geoiptest.WriteFile(t, dir, "cut.mmdb", b[:len(b)/2])
	_, err = Open(ASN, cut, nil)
	assert.Error(t, err)

	_, err = Open(Country, asn, nil)
	assert.ErrorContains(t, err, `"GeoLite2-ASN" database, not a country or city one`)
	country := geoiptest.WriteFile(t, dir, "country.mmdb", geoiptest.CountryBytes(t, "", map[string]geoiptest.Place{"192.0.2.0/24": {Country: "US"}}))
	_, err = Open(ASN, country, nil)
	assert.ErrorContains(t, err, `"GeoLite2-Country" database, not an ASN one`)
}

func TestReloadReplacesTheDatabaseAndKeepsItOnABadFile(t *testing.T) {
	dir := t.TempDir()
	path := asnDB(t, dir, "Old Net")
	d, err := Open(ASN, path, nil)
	require.NoError(t, err)
	changed, err := d.Reload()
	require.NoError(t, err)
	assert.False(t, changed, "the same file")

	asnDB(t, dir, "New Net") // replaced (a new inode)
	changed, err = d.Reload()
	require.NoError(t, err)
	assert.True(t, changed)
	_, name := d.ASN(ip("192.0.2.1"))
	assert.Equal(t, "New Net", name)
	assert.Equal(t, uint64(1), d.Reloads())

	// Garbage written in place over the file in use: the loaded database is a
	// copy in memory, so it answers as before.
	require.NoError(t, os.WriteFile(path, []byte("garbage"), 0o644))
	changed, err = d.Reload()
	assert.False(t, changed)
	assert.ErrorContains(t, err, "stays in use")
	_, name = d.ASN(ip("192.0.2.1"))
	assert.Equal(t, "New Net", name)
	assert.Equal(t, uint64(1), d.Errors())

	// Gone: the same.
	require.NoError(t, os.Remove(path))
	_, err = d.Reload()
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, name = d.ASN(ip("192.0.2.1"))
	assert.Equal(t, "New Net", name)

	asnDB(t, dir, "Third Net")
	changed, err = d.Reload()
	require.NoError(t, err)
	assert.True(t, changed)
	_, name = d.ASN(ip("192.0.2.1"))
	assert.Equal(t, "Third Net", name)
}

// TestPollLoadsASettledChange: a changed file is loaded on the poll after the one
// that saw it change; a bad one is counted once and not retried until it changes.
func TestPollLoadsASettledChange(t *testing.T) {
	dir := t.TempDir()
	path := asnDB(t, dir, "Old Net")
	d, err := Open(ASN, path, nil)
	require.NoError(t, err)
	name := func() string { _, n := d.ASN(ip("192.0.2.1")); return n }

	d.poll()
	assert.Equal(t, uint64(0), d.Reloads())
	asnDB(t, dir, "New Net")
	d.poll()
	assert.Equal(t, "Old Net", name(), "seen changing: not yet")
	d.poll()
	assert.Equal(t, "New Net", name())
	assert.Equal(t, uint64(1), d.Reloads())

	require.NoError(t, os.WriteFile(path, []byte("half a datab"), 0o644))
	d.poll()
	d.poll()
	d.poll()
	assert.Equal(t, uint64(1), d.Errors())
	assert.Equal(t, "New Net", name())

	require.NoError(t, os.Remove(path))
	d.poll()
	d.poll()
	assert.Equal(t, uint64(2), d.Errors(), "a missing file counts once")

	asnDB(t, dir, "Back Net")
	d.poll()
	d.poll()
	assert.Equal(t, "Back Net", name())
	assert.Equal(t, uint64(2), d.Reloads())
}

func TestRunFollowsTheFile(t *testing.T) {
	dir := t.TempDir()
	path := geoiptest.WriteFile(t, dir, "c.mmdb", geoiptest.CountryBytes(t, "", map[string]geoiptest.Place{"192.0.2.0/24": {Country: "US"}}))
	d, err := Open(Country, path, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.Run(ctx, 5*time.Millisecond) }()
	// Readers while it reloads (the race detector watches).
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			d.Country(ip("192.0.2.1"))
		}
	}()
	geoiptest.WriteFile(t, dir, "c.mmdb", geoiptest.CountryBytes(t, "", map[string]geoiptest.Place{"192.0.2.0/24": {Country: "NZ"}}))
	require.Eventually(t, func() bool { return d.Country(ip("192.0.2.1")) == "NZ" }, time.Minute, 5*time.Millisecond)
	cancel()
	wg.Wait()
	assert.Equal(t, uint64(1), d.Reloads())
}
