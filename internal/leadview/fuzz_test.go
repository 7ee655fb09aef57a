package leadview_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/internal/leadview"
)

// FuzzDecodeAckClaim: any payload either decodes into a complete claim that
// round-trips, or fails with ErrBadClaim.
func FuzzDecodeAckClaim(f *testing.F) {
	f.Add([]byte(`{"l":"lead-1","e":"lead-1.escalation-1","r":"sam"}`))
	f.Add([]byte(`{"l":"","e":"x","r":"y"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := leadview.DecodeAckClaim(b)
		if err != nil {
			require.ErrorIs(t, err, leadview.ErrBadClaim)
			return
		}
		require.NotEmpty(t, c.Lead)
		again, err := leadview.DecodeAckClaim(c.Encode())
		require.NoError(t, err)
		require.Equal(t, c, again)
	})
}
