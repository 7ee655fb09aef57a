package outhttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/internal/outhttp"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		h    string
		want time.Duration
	}{
		{"empty", "", 0},
		{"seconds", " 120 ", 2 * time.Minute},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"past date", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"garbage", "soon", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, outhttp.RetryAfter(tt.h, now))
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func TestStripURL(t *testing.T) {
	t.Parallel()
	secret := "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
	err := outhttp.StripURL(&url.Error{Op: "Post", URL: secret, Err: errors.New("connection refused")})
	require.NotContains(t, err.Error(), "XXXXSECRET")
	require.Equal(t, "Post: connection refused", err.Error())

	err = outhttp.StripURL(&url.Error{Op: "Post", URL: secret, Err: timeoutErr{}})
	require.NotContains(t, err.Error(), "XXXXSECRET")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	plain := errors.New("other")
	require.Equal(t, plain, outhttp.StripURL(plain))
}
