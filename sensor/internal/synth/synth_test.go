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
