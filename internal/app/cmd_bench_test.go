package app

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseGrowth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "100000", want: []int{100000}},
		{in: "100_000, 1000000", want: []int{100000, 1000000}},
		{in: "0", wantErr: true},
		{in: "10k", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseGrowth(tt.in)
		if tt.wantErr {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got)
	}
}

func TestBenchHelp(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := Main([]string{"bench", "--help"}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	for _, flag := range []string{"--database-url", "--nats-url", "--quick", "--json", "--out", "--growth", "--budget", "--cpuprofile"} {
		require.Contains(t, out.String(), flag)
	}
}
