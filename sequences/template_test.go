package sequences_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/sequences"
)

func loadBase(t *testing.T, files map[string]string) *sequences.Bundle {
	t.Helper()
	b, err := sequences.LoadFS(withFiles(files))
	require.NoError(t, err)
	return b
}

func TestRender(t *testing.T) {
	t.Parallel()
	b := loadBase(t, map[string]string{
		"templates/welcome.html": "---\nsubject: \"Welcome, {{ .lead.first_name }}\"\npreheader: \"For {{ .lead.email }}\"\nfrom: \"Ana <ana@acme.example>\"\nreply_to: help@acme.example\n---\n<p>Hi {{ .lead.first_name }} ({{ .lead.employees }})</p>\n<a href=\"{{ .unsubscribe_url }}\">unsubscribe</a>\n<p>{{ .extra.postal_address | default \"Acme, Main St\" }}</p>\n",
	})
	tpl := b.Templates["welcome"]
	require.NotNil(t, tpl)
	tests := []struct {
		name  string
		data  sequences.RenderData
		check func(t *testing.T, r *sequences.Rendered)
	}{
		{"plain", sequences.RenderData{Lead: map[string]any{"first_name": "Ana", "email": "ana@x.example", "employees": 250.0}, UnsubscribeURL: "https://n.example/u/tok"},
			func(t *testing.T, r *sequences.Rendered) {
				require.Equal(t, "Welcome, Ana", r.Subject)
				require.Equal(t, "For ana@x.example", r.Preheader)
				require.Equal(t, "Ana <ana@acme.example>", r.From)
				require.Equal(t, "help@acme.example", r.ReplyTo)
				require.Contains(t, r.HTML, "<p>Hi Ana (250)</p>")
				require.Contains(t, r.HTML, `href="https://n.example/u/tok"`)
				require.Contains(t, r.HTML, "Acme, Main St")
				require.Equal(t, "Hi Ana\n", r.Text)
			}},
		{"defaults for missing fields", sequences.RenderData{},
			func(t *testing.T, r *sequences.Rendered) {
				require.Equal(t, "Welcome, there", r.Subject)
				require.Contains(t, r.HTML, "<p>Hi there (0)</p>")
				require.NotContains(t, r.HTML, "no value")
			}},
		{"hostile html", sequences.RenderData{Lead: map[string]any{"first_name": `<script>alert(1)</script><img src=x onerror=y>`}},
			func(t *testing.T, r *sequences.Rendered) {
				require.NotContains(t, r.HTML, "<script>")
				require.NotContains(t, r.HTML, "<img")
				require.Contains(t, r.HTML, "&lt;script&gt;")
			}},
		{"template syntax in data is not interpreted", sequences.RenderData{Lead: map[string]any{"first_name": `{{ .unsubscribe_url }}{{ template "x" }}`}, UnsubscribeURL: "SECRET"},
			func(t *testing.T, r *sequences.Rendered) {
				require.Equal(t, `Welcome, {{ .unsubscribe_url }}{{ template "x" }}`, r.Subject)
				require.Contains(t, r.HTML, "{{ .unsubscribe_url }}")
				require.Equal(t, 1, strings.Count(r.HTML, "SECRET"))
			}},
		{"CR LF cannot add headers", sequences.RenderData{Lead: map[string]any{"first_name": "Ana\r\nBcc: victim@example.com\n\u2028X"}},
			func(t *testing.T, r *sequences.Rendered) {
				require.NotContains(t, r.Subject, "\r")
				require.NotContains(t, r.Subject, "\n")
				require.NotContains(t, r.Subject, "\u2028")
				require.Equal(t, "Welcome, Ana Bcc: victim@example.com X", r.Subject)
			}},
		{"javascript url escaped", sequences.RenderData{UnsubscribeURL: "javascript:alert(1)"},
			func(t *testing.T, r *sequences.Rendered) {
				require.NotContains(t, r.HTML, "javascript:")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := tpl.Render(tt.data)
			require.NoError(t, err)
			tt.check(t, r)
		})
	}
}

func TestRenderWithoutTextPart(t *testing.T) {
	t.Parallel()
	b := loadBase(t, nil)
	r, err := b.Templates["tips"].Render(sequences.RenderData{Lead: map[string]any{"email": "a@b.example"}})
	require.NoError(t, err)
	require.Empty(t, r.Text)
	require.Equal(t, "Tips", r.Subject)
	require.Contains(t, r.HTML, "a@b.example")
	require.Empty(t, r.From) // the sequence or project default applies
}

func TestRenderExamples(t *testing.T) {
	t.Parallel()
	b, err := sequences.Load("../examples")
	require.NoError(t, err)
	for id, tpl := range b.Templates {
		r, err := tpl.Render(sequences.RenderData{
			Lead:           map[string]any{"first_name": "Ana", "company": "Northwind", "employees": 320, "email": "ana@northwind.example"},
			UnsubscribeURL: "https://nurture.example/u/abc",
		})
		require.NoError(t, err, id)
		require.NotEmpty(t, r.Subject, id)
		require.Contains(t, r.HTML, "https://nurture.example/u/abc", id)
		require.NotContains(t, r.HTML, "<no value>", id)
		require.NotContains(t, r.Subject, "<no value>", id)
	}
}
