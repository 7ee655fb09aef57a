package redact_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/internal/redact"
)

func TestEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"plain key", "ann@acme.example", "<email>"},
		{"quoted rcpt", `550 5.1.1 <ann@acme.example>: no such user`, `550 5.1.1 <<email>>: no such user`},
		{"send id", "ann%40acme%2Eexample.onboarding-1.welcome", "<email>.onboarding-1.welcome"},
		{"escalation id", "bob%40sub%2Eacme%2Eco%2Euk.escalation-2/3", "<email>.escalation-2/3"},
		{"no address", "lead-42.onboarding-1.welcome", "lead-42.onboarding-1.welcome"},
		{"two", "a@x.io and b@y.org", "<email> and <email>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, redact.Email(tt.in))
		})
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	require.Empty(t, redact.Error(nil))
	err := fmt.Errorf("deliver send %s: %w", "ann%40acme%2Eexample.s.welcome", errors.New("550 <ann@acme.example> unknown"))
	require.Equal(t, "deliver send <email>.s.welcome: 550 <<email>> unknown", redact.Error(err))
}
