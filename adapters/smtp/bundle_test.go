package smtp_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/internal/token"
	"github.com/nurture-oss/nurture/sequences"
)

// TestExampleTemplates composes every example template through the real
// sequences renderer with hostile lead data.
func TestExampleTemplates(t *testing.T) {
	t.Parallel()
	b, err := sequences.Load("../../examples")
	require.NoError(t, err)
	signer, err := token.New(token.Key{ID: "k1", Secret: []byte("0123456789abcdef")})
	require.NoError(t, err)
	c, err := smtp.NewComposer(smtp.ComposeConfig{
		PublicURL: "https://mail.lumen.example", Signer: signer,
		Renderer:      smtp.BundleRenderer(func() *sequences.Bundle { return b }),
		PostalAddress: "Lumen Analytics, 100 Main St, Boston MA",
	})
	require.NoError(t, err)
	ids := make([]string, 0, len(b.Templates))
	for id := range b.Templates {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	require.NotEmpty(t, ids)
	for _, id := range ids {
		for _, evil := range []string{"Ada", "<script>alert(1)</script>", "Eve\r\nBcc: x@evil.example", "{{ .unsubscribe_url }}"} {
			p := payload("snd-"+id, id, map[string]any{"first_name": evil, "company": evil})
			m, err := c.Compose(context.Background(), p)
			require.NoError(t, err, id)
			var buf bytes.Buffer
			_, err = m.Msg.WriteTo(&buf)
			require.NoError(t, err, id)
			got := parse(t, buf.Bytes())
			require.NotContains(t, got.html, "<script>", id)
			require.NotContains(t, got.msg.Header, "Bcc", id)
			require.NotContains(t, decodeHeader(t, got.msg.Header.Get("Subject")), "\n", id)
			require.NotEmpty(t, got.text, id)
			require.Equal(t, 1, strings.Count(got.html, "Lumen Analytics, 100 Main St"), "%s: postal address once", id)
			require.Contains(t, got.msg.Header.Get("List-Unsubscribe"), "https://mail.lumen.example/u/", id)
			if strings.HasPrefix(evil, "{{") {
				require.Contains(t, got.text+got.html, evil, "%s: lead data is never template code", id)
			}
			links, err := c.Links(context.Background(), p)
			require.NoError(t, err, id)
			require.Equal(t, m.Links, links, "%s: click resolution re-renders the same links", id)
		}
	}
}
