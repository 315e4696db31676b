package synth

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGenerateDeterministic(t *testing.T) {
	cfg := Config{Frames: 1000, Flows: 100, Seed: 7}
	a, err := Generate(cfg)
	require.NoError(t, err)
	b, err := Generate(cfg)
	require.NoError(t, err)
	require.Equal(t, a.Data, b.Data)
	cfg.Seed = 8
	c, err := Generate(cfg)
	require.NoError(t, err)
	require.NotEqual(t, a.Data, c.Data)
	require.Len(t, a.Frame(999), 64)
	require.Equal(t, a.StartNS+999_000, a.Timestamp(999))
}

func TestGenerateChecksConfig(t *testing.T) {
	for _, cfg := range []Config{{Frames: 0, Flows: 1}, {Frames: 1, Flows: 0}, {Frames: 1, Flows: 1, FrameLen: 40}} {
		_, err := Generate(cfg)
		require.Error(t, err, "%+v", cfg)
	}
}

func TestWritePcap(t *testing.T) {
	s, err := Generate(Config{Frames: 10, Flows: 3, Seed: 1})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, WritePcap(&buf, s, 2))
	require.Equal(t, 24+2*10*(16+64), buf.Len())
}

func TestWriteUniformPcapMatchesGenerate(t *testing.T) {
	cfg := Config{Frames: 5000, Flows: 300, Seed: 3}
	s, err := Generate(cfg)
	require.NoError(t, err)
	var a, b bytes.Buffer
	require.NoError(t, WritePcap(&a, s, 1))
	require.NoError(t, WriteUniformPcap(&b, cfg))
	require.Equal(t, a.Bytes(), b.Bytes())
}

func TestWriteMixedPcap(t *testing.T) {
	cfg := MixedConfig{Frames: 50_000, Flows: 10_000, Seed: 9, Concurrent: 500}
	var a, b bytes.Buffer
	st, err := WriteMixedPcap(&a, cfg)
	require.NoError(t, err)
	_, err = WriteMixedPcap(&b, cfg)
	require.NoError(t, err)
	require.Equal(t, a.Bytes(), b.Bytes(), "same seed, same file")
	require.Equal(t, 50_000, st.Frames)
	require.Equal(t, 10_000, st.Flows)
	require.Equal(t, st.Flows, st.TCPFlows+st.UDPFlows+st.ICMPFlows)
	require.Positive(t, st.IPv6Flows)
	require.Positive(t, st.CompleteTCP)
	require.Equal(t, int64(a.Len()), 24+16*int64(st.Frames)+st.Bytes)
}
