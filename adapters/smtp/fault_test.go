package smtp_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/adapters/smtp/smtptest"
	"github.com/nurture-oss/nurture/internal/outbox"
)

// TestFaultMatrix drives a real SMTP server through each failure and checks
// the outbox class every one of them ends in.
func TestFaultMatrix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		stage     smtptest.Stage
		fault     smtptest.Fault
		want      outbox.Class
		suppress  bool
		delivered bool // the server kept the message
	}{
		{"421 at MAIL", smtptest.StageMail, smtptest.Fault{Code: 421, Enhanced: [3]int{4, 4, 5}}, outbox.Transient, false, false},
		{"450 at RCPT", smtptest.StageRcpt, smtptest.Fault{Code: 450, Enhanced: [3]int{4, 2, 1}}, outbox.Transient, false, false},
		{"451 at end of data", smtptest.StageData, smtptest.Fault{Code: 451, Enhanced: [3]int{4, 3, 0}}, outbox.Transient, false, false},
		{"452 at RCPT", smtptest.StageRcpt, smtptest.Fault{Code: 452, Enhanced: [3]int{4, 5, 3}}, outbox.Transient, false, false},
		{"550 5.1.1 at RCPT", smtptest.StageRcpt, smtptest.Fault{Code: 550, Enhanced: [3]int{5, 1, 1}, Message: "no such user"}, outbox.Permanent, true, false},
		{"550 5.1.1 at end of data", smtptest.StageData, smtptest.Fault{Code: 550, Enhanced: [3]int{5, 1, 1}}, outbox.Permanent, true, false},
		{"550 without enhanced code at RCPT", smtptest.StageRcpt, smtptest.Fault{Code: 550}, outbox.Permanent, true, false},
		{"554 5.7.1 at end of data", smtptest.StageData, smtptest.Fault{Code: 554, Enhanced: [3]int{5, 7, 1}, Message: "rejected by policy"}, outbox.Permanent, false, false},
		{"550 5.7.1 at RCPT", smtptest.StageRcpt, smtptest.Fault{Code: 550, Enhanced: [3]int{5, 7, 1}}, outbox.Permanent, false, false},
		{"552 5.3.4 at end of data", smtptest.StageData, smtptest.Fault{Code: 552, Enhanced: [3]int{5, 3, 4}}, outbox.Permanent, false, false},
		{"553 5.1.7 at MAIL (our sender)", smtptest.StageMail, smtptest.Fault{Code: 553, Enhanced: [3]int{5, 1, 7}}, outbox.Permanent, false, false},
		{"disconnect before the MAIL reply", smtptest.StageMail, smtptest.Fault{Drop: true}, outbox.Transient, false, false},
		{"disconnect before the RCPT reply", smtptest.StageRcpt, smtptest.Fault{Drop: true}, outbox.Transient, false, false},
		{"disconnect after DATA end, before the reply", smtptest.StageData, smtptest.Fault{Drop: true}, outbox.Unknown, false, false},
		{"disconnect after 250", smtptest.StageData, smtptest.Fault{DropAfterReply: true}, outbox.Delivered, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, opts{})
			b.sink.SetFault(tc.stage, tc.fault, true)
			err := b.mailer.Deliver(context.Background(), item(t, payload("snd-f", "welcome", map[string]any{"first_name": "F"})))
			require.Equal(t, tc.want, outbox.Classify(err), "error: %v", err)
			var se *outbox.SuppressError
			require.Equal(t, tc.suppress, errors.As(err, &se), "suppress: %v", err)
			if tc.suppress {
				require.Equal(t, "lead@customer.example", se.Email)
			}
			if strings.Contains(tc.name, "5.7.1") {
				require.ErrorContains(t, err, "5.7.x")
				require.Equal(t, 1.0, b.outcome(t, "policy"), "5.7.x is visible as a metric")
			}
			if tc.delivered {
				require.Len(t, b.sink.Messages(), 1)
			} else {
				require.Empty(t, b.sink.Messages())
			}
			if tc.want == outbox.Unknown {
				require.Equal(t, 1.0, b.outcome(t, "unknown"))
			}
			// The mailer recovers: the next send (fault cleared) goes through.
			time.Sleep(20 * time.Millisecond)
			require.NoError(t, b.mailer.Deliver(context.Background(), item(t, payload("snd-next", "welcome", nil))))
		})
	}
}

func TestDialFailureIsTransient(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close()) // nothing listens there now
	b := setup(t, opts{})
	m, err := smtp.New(smtp.Config{Dial: smtp.Dial{Host: "127.0.0.1", Port: port, StartTLS: "none"}, Timeout: time.Second}, b.composer)
	require.NoError(t, err)
	err = m.Deliver(context.Background(), item(t, payload("snd-d", "welcome", nil)))
	require.Error(t, err)
	require.Equal(t, outbox.Transient, outbox.Classify(err))
}

func TestContextDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{pool: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.mailer.Deliver(ctx, item(t, payload("snd-c", "welcome", nil)))
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, b.mailer.Deliver(context.Background(), item(t, payload("snd-c", "welcome", nil))))
}

func TestStartTLSRequiredAgainstPlainServer(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	d, err := smtp.ParseURL("smtp://" + b.sink.Addr() + "?starttls=required")
	require.NoError(t, err)
	m, err := smtp.New(smtp.Config{Dial: d, Timeout: 2 * time.Second}, b.composer)
	require.NoError(t, err)
	err = m.Deliver(context.Background(), item(t, payload("snd-t", "welcome", nil)))
	require.Error(t, err, "a server without STARTTLS must not get the mail when TLS is required")
	require.Equal(t, outbox.Transient, outbox.Classify(err))
	require.Empty(t, b.sink.Messages())
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    smtp.Dial
		wantErr bool
	}{
		{in: "smtp://mail.example.com", want: smtp.Dial{Host: "mail.example.com", Port: 587, StartTLS: "opportunistic"}},
		{in: "smtp://u%40x:p%3Ass@mail.example.com:2525?starttls=required&helo=me.example",
			want: smtp.Dial{Host: "mail.example.com", Port: 2525, Username: "u@x", Password: "p:ss", StartTLS: "required", HELO: "me.example"}},
		{in: "smtps://u:p@mail.example.com", want: smtp.Dial{Host: "mail.example.com", Port: 465, Username: "u", Password: "p", ImplicitTLS: true, StartTLS: "opportunistic"}},
		{in: "smtp://127.0.0.1:1025?starttls=none&insecure_skip_verify=true", want: smtp.Dial{Host: "127.0.0.1", Port: 1025, StartTLS: "none", InsecureSkipVerify: true}},
		{in: "http://mail.example.com", wantErr: true},
		{in: "smtp://", wantErr: true},
		{in: "smtp://h:99999", wantErr: true},
		{in: "smtp://h?starttls=sometimes", wantErr: true},
	}
	for _, tc := range tests {
		got, err := smtp.ParseURL(tc.in)
		if tc.wantErr {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	// A password never shows in a parse error.
	_, err := smtp.ParseURL("smtp://u:secret@h:bad port")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret")
}
