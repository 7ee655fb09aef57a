package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
)

func dsn(ref, action, status string) string {
	return strings.ReplaceAll(`From: MAILER-DAEMON@mx.customer.example
To: bounces@example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"

--BOUND
Content-Type: text/plain

Delivery failed.

--BOUND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.example
Arrival-Date: Mon, 2 Mar 2026 10:00:00 +0000

Final-Recipient: rfc822; Ada@Customer.example
Original-Recipient: rfc822;ada@customer.example
Action: `+action+`
Status: `+status+`
Diagnostic-Code: smtp; 550 5.1.1 <ada@customer.example>: Recipient address rejected

--BOUND
Content-Type: text/rfc822-headers

From: Nurture Team <team@example.com>
To: <ada@customer.example>
Subject: Welcome
Message-ID: <snd-1@example.com>
X-Nurture-Ref:
 `+ref+`

--BOUND--
`, "\n", "\r\n")
}

func arf(ref string) string {
	return strings.ReplaceAll(`From: feedback@isp.example
To: abuse@example.com
Subject: FW: Welcome
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain

This is an email abuse report.

--ARF
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeISP/1.0
Version: 1
Original-Mail-From: <bounces@example.com>
Original-Rcpt-To: <ada@customer.example>

--ARF
Content-Type: message/rfc822

From: Nurture Team <team@example.com>
To: <ada@customer.example>
Subject: Welcome
X-Nurture-Ref: `+ref+`

Hello
--ARF--
`, "\n", "\r\n")
}

func sns(t *testing.T, topic, typ string, msg any) string {
	inner, err := json.Marshal(msg)
	require.NoError(t, err)
	env, err := json.Marshal(map[string]string{
		"Type": typ, "MessageId": "m-1", "TopicArn": topic, "Message": string(inner),
		"SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=x",
	})
	require.NoError(t, err)
	return string(env)
}

const topic = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"

func sesMsg(kind string, ref string, body map[string]any) map[string]any {
	m := map[string]any{
		"notificationType": kind,
		"mail": map[string]any{
			"messageId": "ses-1",
			"headers":   []map[string]string{{"name": "From", "value": "team@example.com"}, {"name": "X-Nurture-Ref", "value": ref}},
		},
	}
	for k, v := range body {
		m[k] = v
	}
	return m
}

func TestBounces(t *testing.T) {
	t.Parallel()
	auth := []string{"Authorization", "Bearer " + trkBounceToken}
	tests := []struct {
		name       string
		body       func(ref string) string
		wantType   string
		wantKind   string
		suppressed string // reason or ""
	}{
		{"DSN hard", func(ref string) string { return dsn(ref, "failed", "5.1.1") }, engine.EventEmailBounced, "hard", "bounced"},
		{"DSN soft (delayed)", func(ref string) string { return dsn(ref, "delayed", "4.2.2") }, engine.EventEmailBounced, "soft", ""},
		{"DSN failed with 4.x is soft", func(ref string) string { return dsn(ref, "failed", "4.4.7") }, engine.EventEmailBounced, "soft", ""},
		{"ARF complaint", arf, engine.EventEmailComplained, "", "complained"},
		{"SES permanent bounce", func(ref string) string {
			return sns(t, topic, "Notification", sesMsg("Bounce", ref, map[string]any{"bounce": map[string]any{
				"bounceType": "Permanent", "bounceSubType": "General", "feedbackId": "fb-1",
				"bouncedRecipients": []map[string]string{{"emailAddress": "ada@customer.example", "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}},
			}}))
		}, engine.EventEmailBounced, "hard", "bounced"},
		{"SES transient bounce", func(ref string) string {
			return sns(t, topic, "Notification", sesMsg("Bounce", ref, map[string]any{"bounce": map[string]any{
				"bounceType": "Transient", "bounceSubType": "MailboxFull", "feedbackId": "fb-2",
				"bouncedRecipients": []map[string]string{{"emailAddress": "ada@customer.example", "status": "4.2.2"}},
			}}))
		}, engine.EventEmailBounced, "soft", ""},
		{"SES complaint", func(ref string) string {
			return sns(t, topic, "Notification", sesMsg("Complaint", ref, map[string]any{"complaint": map[string]any{
				"feedbackId": "fb-3", "complaintFeedbackType": "abuse",
				"complainedRecipients": []map[string]string{{"emailAddress": "ada@customer.example"}},
			}}))
		}, engine.EventEmailComplained, "", "complained"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := trkSetup(t)
			ref := b.urls.BounceRef(b.ref)
			res := b.do(t, "POST", "/v1/bounces", tc.body(ref), auth...)
			body, _ := io.ReadAll(res.Body)
			require.Equal(t, http.StatusOK, res.StatusCode, string(body))
			evs := b.pub.all()
			require.Len(t, evs, 1)
			require.Equal(t, tc.wantType, evs[0].Type)
			require.Equal(t, "lead-1", evs[0].Lead)
			require.Equal(t, "snd-1", evs[0].Properties["send"])
			if tc.wantKind != "" {
				require.Equal(t, tc.wantKind, evs[0].Properties["kind"])
			}
			if tc.suppressed != "" {
				require.Equal(t, map[string]string{"ada@customer.example": tc.suppressed}, b.state.suppressed)
			} else {
				require.Empty(t, b.state.suppressed, "soft bounces do not suppress")
			}
			// A repeated hard bounce/complaint report is the same event.
			if tc.suppressed != "" {
				b.do(t, "POST", "/v1/bounces", tc.body(ref), auth...)
				evs = b.pub.all()
				require.Equal(t, evs[0].ID, evs[1].ID)
			}
		})
	}
}

func TestBounceIntakeRejects(t *testing.T) {
	t.Parallel()
	b := trkSetup(t)
	ref := b.urls.BounceRef(b.ref)
	good := dsn(ref, "failed", "5.1.1")

	res := b.do(t, "POST", "/v1/bounces", good)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	res = b.do(t, "POST", "/v1/bounces", good, "Authorization", "Bearer wrong")
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)

	auth := []string{"Authorization", "Bearer " + trkBounceToken}
	// Wrong topic: 403, nothing suppressed.
	res = b.do(t, "POST", "/v1/bounces", sns(t, "arn:aws:sns:eu-west-1:999:other", "Notification", sesMsg("Complaint", ref, map[string]any{"complaint": map[string]any{
		"complainedRecipients": []map[string]string{{"emailAddress": "ada@customer.example"}}}})), auth...)
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	// Subscription confirmation: acknowledged, nothing fetched or published.
	res = b.do(t, "POST", "/v1/bounces", sns(t, topic, "SubscriptionConfirmation", map[string]any{}), auth...)
	require.Equal(t, http.StatusOK, res.StatusCode)
	// Garbage.
	res = b.do(t, "POST", "/v1/bounces", "hello", auth...)
	require.Equal(t, http.StatusUnprocessableEntity, res.StatusCode)
	// A forged reference is ignored: the address is still suppressed
	// (the report is about the address), but no event names a lead.
	forged := dsn("k2.eyJsIjoibGVhZC05OTkiLCJzIjoieCJ9.AAAAAAAAAAAAAAAAAAAAAA", "failed", "5.1.1")
	res = b.do(t, "POST", "/v1/bounces", forged, "Authorization", "Basic "+basicAuth("sns", trkBounceToken))
	body, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	require.Contains(t, string(body), `"unmatched":1`)
	require.Empty(t, b.pub.all())
	require.Equal(t, "bounced", b.state.suppressed["ada@customer.example"])
}

func basicAuth(u, p string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(u, p)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}
