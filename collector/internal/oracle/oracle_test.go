package oracle

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoad(t *testing.T) {
	flows, err := Load(Dir)
	require.NoError(t, err)
	require.Len(t, flows, 1137, "the flows of every expected/*.jsonl")
	keys := map[[2]any]bool{}
	for _, f := range flows {
		k := [2]any{f.Sensor, f.Delta().String()}
		require.False(t, keys[k], "duplicate flow in %s", f.Sensor)
		keys[k] = true
	}
}
