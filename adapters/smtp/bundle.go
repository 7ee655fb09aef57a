package smtp

import (
	"context"
	"fmt"
	"maps"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/sequences"
)

// BundleRenderer renders with the templates of a loaded content directory.
// current is called on every render, so a reloaded bundle takes effect for
// the next send (and for click resolution of older sends: keep template
// links stable across edits, or clicks on old emails answer 410).
func BundleRenderer(current func() *sequences.Bundle) Renderer {
	return RendererFunc(func(_ context.Context, s engine.SendEmail, d RenderData) (*Rendered, error) {
		b := current()
		if b == nil {
			return nil, fmt.Errorf("render %s: no content loaded", s.Template)
		}
		t, ok := b.Templates[s.Template]
		if !ok {
			return nil, fmt.Errorf("render: unknown template %q", s.Template)
		}
		lead := map[string]any{}
		if d.Lead != nil {
			maps.Copy(lead, d.Lead.Traits)
			lead["email"] = d.Lead.Email
		}
		r, err := t.Render(sequences.RenderData{Lead: lead, UnsubscribeURL: d.UnsubscribeURL, Extra: d.Extra})
		if err != nil {
			return nil, err
		}
		return &Rendered{Subject: r.Subject, From: r.From, ReplyTo: r.ReplyTo, Preheader: r.Preheader, HTML: r.HTML, Text: r.Text}, nil
	})
}
