// Package geoiptest writes small MaxMind DB files for tests (with mmdbwriter, as
// MaxMind's own tools do): an ASN database in the GeoLite2-ASN layout and a
// country database in the GeoLite2-Country layout. Tests only.
package geoiptest

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// AS is one network's autonomous system.
type AS struct {
	Number uint32
	Org    string
}

// Place is one network's country codes; either may be empty (absent).
type Place struct {
	Country, Registered string
}

// ASNBytes is a GeoLite2-ASN database of nets.
func ASNBytes(t testing.TB, nets map[string]AS) []byte {
	t.Helper()
	return write(t, "GeoLite2-ASN", func(tree *mmdbwriter.Tree) {
		for p, as := range nets {
			m := mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(as.Number)}
			if as.Org != "" {
				m["autonomous_system_organization"] = mmdbtype.String(as.Org)
			}
			insert(t, tree, p, m)
		}
	})
}

// CountryBytes is a GeoLite2-Country database of nets (dbType "" is
// GeoLite2-Country; a City layout has the same country fields).
func CountryBytes(t testing.TB, dbType string, nets map[string]Place) []byte {
	t.Helper()
	if dbType == "" {
		dbType = "GeoLite2-Country"
	}
	return write(t, dbType, func(tree *mmdbwriter.Tree) {
		for p, pl := range nets {
			m := mmdbtype.Map{"continent": mmdbtype.Map{"code": mmdbtype.String("XX")}}
			if pl.Country != "" {
				m["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(pl.Country), "geoname_id": mmdbtype.Uint32(1),
					"names": mmdbtype.Map{"en": mmdbtype.String("Country " + pl.Country)}}
			}
			if pl.Registered != "" {
				m["registered_country"] = mmdbtype.Map{"iso_code": mmdbtype.String(pl.Registered)}
			}
			insert(t, tree, p, m)
		}
	})
}

// WriteFile writes b to dir/name (atomically: a new inode, as database updaters
// do) and returns the path.
func WriteFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func write(t testing.TB, dbType string, fill func(*mmdbwriter.Tree)) []byte {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, RecordSize: 24, IncludeReservedNetworks: true,
		Description: map[string]string{"en": "netwatch test " + dbType}, Languages: []string{"en"}})
	if err != nil {
		t.Fatal(err)
	}
	fill(tree)
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func insert(t testing.TB, tree *mmdbwriter.Tree, prefix string, v mmdbtype.DataType) {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	n := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	if err := tree.Insert(n, v); err != nil {
		t.Fatalf("insert %s: %v", prefix, err)
	}
}
