package capture

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigChecks(t *testing.T) {
	c := DefaultConfig("eth0")
	if err := c.Check(); err != nil {
		t.Fatalf("DefaultConfig does not validate: %v", err)
	}
	if got := c.BlockSize * c.NumBlocks; got != 16<<20 {
		t.Errorf("default ring is %d bytes, want 16 MiB", got)
	}
	if !c.Promisc {
		t.Errorf("default Promisc is false, want true")
	}
}

func TestConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(*Config)
		field string
		msg   string
	}{
		{"no interface", func(c *Config) { c.Interface = "" }, "Interface", "interface name is empty"},
		{"long interface", func(c *Config) { c.Interface = "abcdefghijklmnop" }, "Interface", "longer than 15 bytes"},
		{"zero block", func(c *Config) { c.BlockSize = 0 }, "BlockSize", "block size must be positive"},
		{"block not page multiple", func(c *Config) { c.BlockSize = 6000 }, "BlockSize", fmt.Sprintf("block size must be a multiple of the page size (%d)", os.Getpagesize())},
		{"block not power of two", func(c *Config) { c.BlockSize = 3 * 4096 }, "BlockSize", "block size must be a power of two"},
		{"block too big", func(c *Config) { c.BlockSize = 1 << 31 }, "BlockSize", "at most"},
		{"one block", func(c *Config) { c.NumBlocks = 1 }, "NumBlocks", "at least 2 blocks"},
		{"ring too big", func(c *Config) { c.NumBlocks = 1 << 20 }, "NumBlocks", "exceeds 16 GiB"},
		{"tiny frame", func(c *Config) { c.FrameSize = 64 }, "FrameSize", "at least 80"},
		{"unaligned frame", func(c *Config) { c.FrameSize = 2050 }, "FrameSize", "multiple of TPACKET_ALIGNMENT (16)"},
		{"frame > block", func(c *Config) { c.BlockSize = 4096; c.FrameSize = 8192 }, "FrameSize", "larger than the block size"},
		{"zero timeout", func(c *Config) { c.BlockTimeout = 0 }, "BlockTimeout", "between 1ms and 1m"},
		{"sub-ms timeout", func(c *Config) { c.BlockTimeout = 1500 * time.Microsecond }, "BlockTimeout", "whole milliseconds"},
		{"small snaplen", func(c *Config) { c.Snaplen = 20 }, "Snaplen", "between 64 and 262144"},
		{"no workers", func(c *Config) { c.Workers = 0 }, "Workers", "between 1 and 256"},
		{"too many workers", func(c *Config) { c.Workers = 1000 }, "Workers", "between 1 and 256"},
		{"zero tick", func(c *Config) { c.TickInterval = 0 }, "TickInterval", "between 1ms and 1s"},
		{"zero stats", func(c *Config) { c.StatsInterval = 0 }, "StatsInterval", "between 10ms and 1h"},
		{"bad filter", func(c *Config) { c.Filter = "udp and prot 53" }, "Filter", `filter "udp and prot 53": unknown primitive "prot"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig("eth0")
			tc.set(&c)
			err := c.Check()
			if err == nil {
				t.Fatalf("Check() = nil, want an error about %s", tc.field)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
			if want := tc.field + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestConfigCheckAccepts(t *testing.T) {
	c := DefaultConfig("eth0")
	c.BlockSize, c.NumBlocks, c.FrameSize = 4096, 2, 4096
	c.Snaplen, c.Workers, c.Filter = 128, 4, "tcp port 443 or (udp and not port 53)"
	if err := c.Check(); err != nil {
		t.Errorf("Check() = %v, want nil", err)
	}
}
